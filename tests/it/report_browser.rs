//! The report's figures as a reader sees them: a real search, `uhc report`, and each SVG
//! rendered by headless Chromium to a PNG that is decoded and measured. Skipped, with a
//! message, when no `chromium` is on PATH, unless `UHC_REQUIRE_CHROMIUM=1` (as `.ci/run`
//! sets after installing Debian's `chromium`), which makes its absence a failure.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// An 8-bit RGB(A) image, decoded.
struct Image {
    width: usize,
    height: usize,
    /// RGB per pixel, row-major.
    rgb: Vec<[u8; 3]>,
}

/// Decodes a non-interlaced 8-bit RGB or RGBA PNG (what Chromium writes) with flate2,
/// already a dependency: chunks, zlib, then the five scanline filters of PNG §9.
fn decode_png(bytes: &[u8]) -> Result<Image, String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !bytes.starts_with(SIGNATURE) {
        return Err("not a PNG (signature)".into());
    }
    let mut pos = SIGNATURE.len();
    let (mut width, mut height, mut channels) = (0usize, 0usize, 0usize);
    let mut idat = Vec::new();
    while pos + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = bytes.get(pos + 8..pos + 8 + len).ok_or("truncated chunk")?;
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                let (depth, colour, interlace) = (data[8], data[9], data[12]);
                channels = match (depth, colour, interlace) {
                    (8, 2, 0) => 3,
                    (8, 6, 0) => 4,
                    _ => return Err(format!("unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    if width == 0 || height == 0 {
        return Err("no IHDR".into());
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .map_err(|e| format!("zlib: {e}"))?;
    let stride = width * channels;
    if raw.len() != height * (stride + 1) {
        return Err(format!(
            "{} bytes of scanlines for {width}×{height}",
            raw.len()
        ));
    }
    let mut out = vec![0u8; height * stride];
    for y in 0..height {
        let filter = raw[y * (stride + 1)];
        let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
        for x in 0..stride {
            let a = if x >= channels {
                out[y * stride + x - channels]
            } else {
                0
            };
            let b = if y > 0 { out[(y - 1) * stride + x] } else { 0 };
            let c = if x >= channels && y > 0 {
                out[(y - 1) * stride + x - channels]
            } else {
                0
            };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let (pa, pb, pc) = (
                        (p - i16::from(a)).abs(),
                        (p - i16::from(b)).abs(),
                        (p - i16::from(c)).abs(),
                    );
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => return Err(format!("unknown filter {f} on row {y}")),
            };
            out[y * stride + x] = line[x].wrapping_add(predictor);
        }
    }
    let rgb = out
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    Ok(Image { width, height, rgb })
}

impl Image {
    fn at(&self, x: usize, y: usize) -> [u8; 3] {
        self.rgb[y * self.width + x]
    }
    /// Ink: clearly darker than the white background (text, axes, markers, grid excluded).
    fn dark(&self, x: usize, y: usize) -> bool {
        let [r, g, b] = self.at(x, y);
        (u32::from(r) * 299 + u32::from(g) * 587 + u32::from(b) * 114) / 1000 < 128
    }
    fn dark_in(&self, xs: std::ops::Range<usize>, ys: std::ops::Range<usize>) -> usize {
        ys.flat_map(|y| xs.clone().map(move |x| (x, y)))
            .filter(|&(x, y)| self.dark(x, y))
            .count()
    }
}

/// The `width` and `height` attributes of an SVG's root element.
fn svg_size(svg: &str) -> (usize, usize) {
    let attr = |name: &str| -> usize {
        svg.split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("svg has no {name}"))
            .round() as usize
    };
    (attr("width"), attr("height"))
}

/// Margin added to the window around the SVG (drawn at the top left): Chromium paints
/// nothing in windows below a minimum size (a 200×100 window came out blank).
const MARGIN: usize = 200;

fn screenshot(chromium: &Path, svg: &Path, png: &Path, (w, h): (usize, usize)) {
    let profile = png.with_extension("profile");
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("--window-size={},{}", w + MARGIN, h + MARGIN))
        .arg(format!("file://{}", svg.display()))
        .stdin(Stdio::null())
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success() && png.exists(),
        "chromium failed on {}: {}\n{}",
        svg.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What makes a figure readable that a program can measure: the window's size, the figure
/// (`w` × `h` at the top left) with ink but not a flood of it, nothing outside it, nothing
/// running off its left or right edge, and a legend under the plot.
fn check_figure(img: &Image, (w, h): (usize, usize)) -> Result<(), String> {
    if (img.width, img.height) != (w + MARGIN, h + MARGIN) {
        return Err(format!(
            "PNG size {}×{}, window {}×{}",
            img.width,
            img.height,
            w + MARGIN,
            h + MARGIN
        ));
    }
    let outside = img.dark_in(w..img.width, 0..img.height) + img.dark_in(0..w, h..img.height);
    if outside > 0 {
        return Err(format!("{outside} dark pixels outside the figure"));
    }
    let total = (w * h) as f64;
    let dark = img.dark_in(0..w, 0..h) as f64;
    let white = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .filter(|&(x, y)| img.at(x, y) == [255, 255, 255])
        .count() as f64;
    let (dark_pct, white_pct) = (100.0 * dark / total, 100.0 * white / total);
    if !(1.0..=30.0).contains(&dark_pct) {
        return Err(format!("{dark_pct:.2} % dark pixels (blank or flooded)"));
    }
    if white_pct < 60.0 {
        return Err(format!("only {white_pct:.1} % white background"));
    }
    // Text cut at the edge leaves ink in the outermost columns.
    let edge = img.dark_in(0..3, 0..h) + img.dark_in(w - 3..w, 0..h);
    if edge > 0 {
        return Err(format!("{edge} dark pixels touch the left or right edge"));
    }
    // The legend: ink in the bottom band, below the plot and its axis label.
    if img.dark_in(0..w, h * 85 / 100..h) < 100 {
        return Err("no legend in the bottom band".into());
    }
    Ok(())
}

#[test]
fn report_figures_render_in_a_real_browser() {
    let Some(chromium) = chromium() else {
        let required = std::env::var("UHC_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1");
        assert!(!required, "UHC_REQUIRE_CHROMIUM=1 but no chromium on PATH");
        eprintln!(
            "SKIPPED report_figures_render_in_a_real_browser: no `chromium` on PATH \
             (apt-get install -y --no-install-recommends chromium; .ci/run does, and \
             sets UHC_REQUIRE_CHROMIUM=1)"
        );
        return;
    };
    let dir = std::env::temp_dir().join(format!("uhc-it-browser-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // Three operators, so the hypervolume chart has four curves with long labels.
    let file = super::cli_search::small_search_text().replace(
        "operators [mutate(0.7), crossover(0.3)]",
        "operators [mutate(0.5), crossover(0.3), random(0.2)]",
    );
    assert!(
        file.contains("random(0.2)"),
        "the example's operators line moved"
    );
    std::fs::write(dir.join("search.uh"), file).expect("write search file");
    let uhc = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_uhc"))
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .output()
            .expect("uhc runs");
        assert!(
            out.status.success(),
            "uhc {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    uhc(&[
        "search",
        "search.uh",
        "--db",
        "run.sqlite",
        "--budget",
        "16",
        "--jobs",
        "1",
    ]);
    uhc(&["report", "run.sqlite", "--out", "report"]);
    for name in ["pareto", "hypervolume"] {
        let svg_path = dir.join("report").join(format!("{name}.svg"));
        let svg = std::fs::read_to_string(&svg_path).expect("figure written");
        let size = svg_size(&svg);
        let png = dir.join(format!("{name}.png"));
        screenshot(&chromium, &svg_path, &png, size);
        let img = decode_png(&std::fs::read(&png).expect("png")).expect("png decodes");
        if let Err(e) = check_figure(&img, size) {
            panic!("{name}: {e} (see {})", png.display());
        }
    }
    // The checks fail on what they exist to catch: a blank page, and text off the edge.
    let blank = dir.join("blank.svg");
    std::fs::write(&blank, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"100\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/></svg>").unwrap();
    let clipped = dir.join("clipped.svg");
    std::fs::write(&clipped, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"200\" height=\"100\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/><text x=\"120\" y=\"90\" font-size=\"40\">a legend far too long</text></svg>").unwrap();
    for (svg, what) in [(&blank, "dark pixels"), (&clipped, "edge")] {
        let png = svg.with_extension("png");
        screenshot(&chromium, svg, &png, (200, 100));
        let img = decode_png(&std::fs::read(&png).unwrap()).expect("png decodes");
        let err = check_figure(&img, (200, 100)).expect_err("a bad figure fails the check");
        assert!(err.contains(what), "{what}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
