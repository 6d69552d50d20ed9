//! Pulling the `.uh` program out of an LLM reply. Pure and total: any string in,
//! never a panic.
//!
//! Models wrap programs in Markdown fences (```` ```uh ````, ```` ``` ````, `~~~`), add
//! "Here is…" prose around them, stop mid-block when they hit `max_tokens`, or send bare
//! text. [`candidates`] finds every plausible program, best first; [`extract_program`]
//! takes the best. The caller can try candidates in turn until one parses.

/// Keywords that open a top-level `.uh` item (mirrors `item` in `grammar/uh.pest`).
pub const ITEM_KEYWORDS: [&str; 6] = ["use", "hardware", "arch", "task", "search", "experiment"];

/// Where a candidate came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A fenced block; `lang` is the lowercased first word of the info string, and
    /// `terminated` is false when the reply ended inside the block.
    Fenced {
        lang: Option<String>,
        terminated: bool,
    },
    /// No usable fence: the program was cut out of the surrounding prose.
    Bare,
}

/// A possible program: a contiguous slice of the reply (after newline normalisation),
/// without leading or trailing blank lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub text: String,
    pub origin: Origin,
}

/// The most plausible program in `reply`, if any text is left once prose is removed.
pub fn extract_program(reply: &str) -> Option<Candidate> {
    candidates(reply).into_iter().next()
}

/// Every candidate program in `reply`, most plausible first. Fenced blocks rank by: has
/// a line that opens a `.uh` item, then tag (`uh`/`uhc`, then none or `text`, then any
/// other language), then terminated before unterminated, then size; ties go to the later
/// block (models put the revised version last). A reply without any fence yields at most
/// one bare candidate; one whose fences are all empty yields none.
pub fn candidates(reply: &str) -> Vec<Candidate> {
    let text = normalize_newlines(reply);
    let lines = line_spans(&text);
    let mut fenced = fenced_blocks(&text, &lines);
    let has_fence = lines
        .iter()
        .any(|&(a, b)| open_fence(&text[a..b]).is_some());
    if fenced.is_empty() && !has_fence {
        return bare(&text, &lines)
            .map(|(a, b)| Candidate {
                text: text[a..b].to_string(),
                origin: Origin::Bare,
            })
            .into_iter()
            .collect();
    }
    // Stable sort, then reverse: best first, and among equals the later block first.
    fenced.sort_by_key(rank);
    fenced.reverse();
    fenced
}

/// CRLF and lone CR become LF.
pub fn normalize_newlines(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Byte ranges of the lines of `text`, newline excluded.
fn line_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = 0;
    for (i, b) in text.bytes().enumerate() {
        if b == b'\n' {
            spans.push((start, i));
            start = i + 1;
        }
    }
    spans.push((start, text.len()));
    spans
}

struct Fence {
    ch: u8,
    len: usize,
    lang: Option<String>,
}

/// An opening fence: 3+ backticks or tildes after any indentation (models indent fences
/// inside list items), then an optional info string. Backtick info strings may not hold
/// backticks (CommonMark 0.31, "Fenced code blocks"), which rules out inline ```x```.
fn open_fence(line: &str) -> Option<Fence> {
    let t = line.trim_start();
    let ch = *t.as_bytes().first()?;
    if ch != b'`' && ch != b'~' {
        return None;
    }
    let len = t.bytes().take_while(|&b| b == ch).count();
    if len < 3 {
        return None;
    }
    // The fence characters are ASCII, so `len` is a char boundary.
    let info = t.get(len..).unwrap_or("").trim();
    if ch == b'`' && info.contains('`') {
        return None;
    }
    let lang = info
        .split_whitespace()
        .next()
        .map(|w| {
            w.trim_matches(|c| c == '{' || c == '}' || c == '.')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty());
    Some(Fence { ch, len, lang })
}

/// A closing fence: only the opening character, at least as many times.
fn closes(line: &str, fence: &Fence) -> bool {
    let t = line.trim();
    t.len() >= fence.len && t.bytes().all(|b| b == fence.ch)
}

fn fenced_blocks(text: &str, lines: &[(usize, usize)]) -> Vec<Candidate> {
    let line = |i: usize| &text[lines[i].0..lines[i].1];
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(fence) = open_fence(line(i)) else {
            i += 1;
            continue;
        };
        let body_start = i + 1;
        let mut j = body_start;
        while j < lines.len() && !closes(line(j), &fence) {
            j += 1;
        }
        let terminated = j < lines.len();
        if let Some((a, b)) = trim_blank_lines(text, &lines[body_start.min(j)..j]) {
            out.push(Candidate {
                text: text[a..b].to_string(),
                origin: Origin::Fenced {
                    lang: fence.lang,
                    terminated,
                },
            });
        }
        i = j + 1;
    }
    out
}

/// The byte range from the first to the last non-blank line, if any.
fn trim_blank_lines(text: &str, lines: &[(usize, usize)]) -> Option<(usize, usize)> {
    let blank = |&(a, b): &(usize, usize)| text[a..b].trim().is_empty();
    let first = lines.iter().position(|l| !blank(l))?;
    let last = lines.iter().rposition(|l| !blank(l))?;
    Some((lines[first].0, lines[last].1))
}

fn rank(c: &Candidate) -> (bool, u8, bool, usize) {
    let (lang_rank, terminated) = match &c.origin {
        Origin::Fenced { lang, terminated } => {
            let r = match lang.as_deref() {
                Some("uh" | "uhc") => 2,
                None | Some("text" | "txt" | "plain" | "plaintext") => 1,
                Some(_) => 0,
            };
            (r, *terminated)
        }
        Origin::Bare => (1, true),
    };
    let looks = c.text.lines().any(opens_item);
    let size = c.text.chars().filter(|ch| !ch.is_whitespace()).count();
    (looks, lang_rank, terminated, size)
}

/// Does `line` open a top-level item? `use "path"`, or `hardware|arch|task|search NAME`
/// followed by nothing, `{`, `on ...` or `extends ...`. Strict enough that prose such as
/// "search for a shallower mesh" does not match.
fn opens_item(line: &str) -> bool {
    let t = line.trim_start();
    let Some((kw, rest)) = ITEM_KEYWORDS
        .iter()
        .find_map(|k| t.strip_prefix(k).map(|rest| (*k, rest)))
    else {
        return false;
    };
    if !rest.starts_with(char::is_whitespace) {
        return false;
    }
    let rest = rest.trim_start();
    if kw == "use" {
        return rest.starts_with('"');
    }
    let ident_len = rest
        .char_indices()
        .take_while(|&(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
        .count();
    if ident_len == 0 {
        return false;
    }
    // Identifier characters are ASCII, so `ident_len` is a char boundary.
    let after = rest.get(ident_len..).unwrap_or("").trim_start();
    after.is_empty()
        || after.starts_with('{')
        || after.starts_with("//")
        || after
            .strip_prefix("on")
            .is_some_and(|r| r.starts_with(char::is_whitespace))
        || after
            .strip_prefix("extends")
            .is_some_and(|r| r.starts_with(char::is_whitespace))
}

/// Brace depth after `line`, skipping string literals and `//` comments.
fn depth_after(line: &str, mut depth: usize) -> usize {
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') | (false, '"') => in_string = !in_string,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, '{') => depth = depth.saturating_add(1),
            (false, '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
}

/// A sentence rather than code: starts with a letter (after Markdown markers), has at
/// least three words and none of the symbols every `.uh` statement line carries.
fn is_prose(line: &str) -> bool {
    let t = line.trim().trim_start_matches(|c: char| {
        matches!(c, '#' | '*' | '_' | '>' | '-') || c.is_whitespace()
    });
    t.chars().next().is_some_and(char::is_alphabetic)
        && !t.contains(['{', '}', '=', ';', '[', ']'])
        && t.split_whitespace().count() >= 3
}

/// The program in a reply without fences. When a line opens a `.uh` item, take from
/// there (with the comment lines just above) through the items that follow, tracking
/// braces; stop at the first top-level line that is neither an item, a comment nor a
/// brace. A reply cut inside a block runs to its end. Without any item line, drop the
/// prose lines at both ends and keep the middle.
fn bare(text: &str, lines: &[(usize, usize)]) -> Option<(usize, usize)> {
    let line = |i: usize| &text[lines[i].0..lines[i].1];
    let Some(first) = (0..lines.len()).find(|&i| opens_item(line(i))) else {
        let keep = |i: &usize| {
            let l = line(*i);
            !l.trim().is_empty() && !is_prose(l)
        };
        let a = (0..lines.len()).find(keep)?;
        let b = (0..lines.len()).rev().find(keep)?;
        return Some((lines[a].0, lines[b].1));
    };
    let mut start = first;
    while start > 0 && line(start - 1).trim_start().starts_with("//") {
        start -= 1;
    }
    let mut depth = 0usize;
    let mut header_open = false;
    let mut last = first;
    for i in first..lines.len() {
        let l = line(i);
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        if depth == 0 {
            let item = opens_item(l);
            let continues = item
                || header_open
                || t.starts_with("//")
                || t.starts_with('{')
                || t.starts_with('}');
            if !continues {
                break;
            }
            if item {
                header_open = !t.starts_with("use");
            }
        }
        depth = depth_after(l, depth);
        if depth > 0 || t.contains('}') {
            header_open = false;
        }
        last = i;
    }
    Some((lines[start].0, lines[last].1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PROGRAM: &str =
        "arch tiny on mzi8 {\n  input x: f32[16]\n  layers [mesh(16), modrelu(b = 0.1)]\n}";

    fn best(reply: &str) -> Candidate {
        extract_program(reply).unwrap_or_else(|| panic!("nothing extracted from {reply:?}"))
    }

    #[test]
    fn fenced_with_prose_around() {
        let reply =
            format!("Here is an improved design:\n\n```uh\n{PROGRAM}\n```\n\nIt uses fewer MZIs.");
        let c = best(&reply);
        assert_eq!(c.text, PROGRAM);
        assert_eq!(
            c.origin,
            Origin::Fenced {
                lang: Some("uh".into()),
                terminated: true
            }
        );
    }

    #[test]
    fn plain_and_tilde_fences_and_crlf() {
        for reply in [
            format!("```\n{PROGRAM}\n```"),
            format!("~~~~ uhc\n{PROGRAM}\n~~~~"),
            format!(
                "Sure!\r\n```uh\r\n{}\r\n```\r\n",
                PROGRAM.replace('\n', "\r\n")
            ),
            format!("  ```uh\n{PROGRAM}\n  ```"),
        ] {
            assert_eq!(best(&reply).text, PROGRAM, "{reply:?}");
        }
    }

    #[test]
    fn unterminated_fence_runs_to_the_end() {
        let cut = &PROGRAM[..PROGRAM.len() - 2];
        let c = best(&format!("Here is the program:\n```uh\n{cut}\n\n"));
        assert_eq!(c.text, cut);
        assert_eq!(
            c.origin,
            Origin::Fenced {
                lang: Some("uh".into()),
                terminated: false
            }
        );
    }

    #[test]
    fn a_tilde_line_does_not_close_a_backtick_fence() {
        let body = "arch a on m {\n~~~\n}";
        assert_eq!(best(&format!("```uh\n{body}\n```")).text, body);
        // A shorter fence does not close a longer one.
        let body = "arch a on m {\n```\n}";
        assert_eq!(best(&format!("````\n{body}\n````")).text, body);
    }

    #[test]
    fn the_program_beats_snippets_and_other_languages() {
        let reply = format!(
            "Change `x` like this:\n```uh\nlayers [mesh(8)]\n```\nFull program:\n```uh\n{PROGRAM}\n```\n\
             To run it:\n```bash\nuhc check tiny.uh && uhc train tiny.uh --epochs 20 --seed 0\n```"
        );
        let all = candidates(&reply);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].text, PROGRAM);
        // The snippet still beats the longer bash block: its tag says `.uh`.
        assert_eq!(all[1].text, "layers [mesh(8)]");
        // Content decides over the tag: a program mislabelled as rust beats a uh snippet.
        let reply = format!("```uh\nlayers [mesh(8)]\n```\n```rust\n{PROGRAM}\n```");
        assert_eq!(best(&reply).text, PROGRAM);
    }

    #[test]
    fn equal_blocks_prefer_the_later_one() {
        let v2 = PROGRAM.replace("tiny", "tin2");
        assert_eq!(
            best(&format!(
                "```uh\n{PROGRAM}\n```\nRevised:\n```uh\n{v2}\n```"
            ))
            .text,
            v2
        );
    }

    #[test]
    fn bare_program_with_prose_around() {
        let two = format!(
            "use \"stdlib/hw/mzi.uh\"\n\n// a small net\n{PROGRAM}\n\ntask t {{ data = digits }}"
        );
        let reply = format!("Sure! Here is a design that should be more robust:\n\n{two}\n\nThis keeps the mesh shallow, which reduces loss.\n");
        let c = best(&reply);
        assert_eq!(c.text, two);
        assert_eq!(c.origin, Origin::Bare);
    }

    #[test]
    fn bare_header_on_its_own_line_and_truncation() {
        let p = "arch a on m\n{\n  input x: f32[4]\n}";
        assert_eq!(best(&format!("Here:\n{p}\nDone, as requested.")).text, p);
        let cut = "arch a on m {\n  input x: f32[4]\n  layers [";
        assert_eq!(best(&format!("Here is it:\n{cut}")).text, cut);
    }

    #[test]
    fn prose_that_mentions_keywords_is_not_a_program_start() {
        let reply = "search for a shallower mesh first.\nlayers [mesh(4)]\nThat is all I would change here.";
        assert_eq!(best(reply).text, "layers [mesh(4)]");
    }

    #[test]
    fn nothing_to_extract() {
        for reply in [
            "",
            "   \n\n",
            "I am sorry, I cannot help with that request.",
            "```uh\n```",
            "```\n\n\n",
        ] {
            assert_eq!(extract_program(reply), None, "{reply:?}");
        }
    }

    #[test]
    fn depth_ignores_braces_in_strings_and_comments() {
        assert_eq!(depth_after(r#"a { b = "}{\"}" // }}}"#, 0), 1);
        assert_eq!(depth_after("}}}", 1), 0);
    }

    /// Lines that are neither fences nor prose-looking item headers.
    fn code_line() -> impl Strategy<Value = String> {
        "[ a-z0-9_=(){}\\[\\],.:\"/]{0,30}".prop_filter("no fence", |l| open_fence(l).is_none())
    }

    fn prose_line() -> impl Strategy<Value = String> {
        "[A-Z][a-z]{1,8}( [a-z]{1,8}){2,6}[.:!]?"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            let _ = candidates(&s);
        }

        #[test]
        fn never_panics_on_fence_heavy_strings(s in "[`~\r\n \"{}/a-z]{0,80}") {
            let all = candidates(&s);
            let norm = normalize_newlines(&s);
            for c in &all {
                // Every candidate is a slice of the normalised reply, trimmed of blank lines.
                prop_assert!(norm.contains(&c.text));
                prop_assert!(!c.text.trim().is_empty());
                prop_assert!(!c.text.contains('\r'));
            }
            // Line endings do not change the result.
            let lf = s.replace('\r', "");
            prop_assert_eq!(candidates(&lf), candidates(&lf.replace('\n', "\r\n")));
        }

        #[test]
        fn a_fenced_block_is_recovered_exactly(
            before in prop::collection::vec(prose_line(), 0..4),
            body in prop::collection::vec(code_line(), 1..8),
            after in prop::collection::vec(prose_line(), 0..4),
            tag in prop::sample::select(vec!["uh", "", "text"]),
        ) {
            let body = body.join("\n");
            prop_assume!(!body.trim().is_empty());
            let reply = format!("{}\n```{tag}\n{body}\n```\n{}", before.join("\n"), after.join("\n"));
            let c = extract_program(&reply);
            let expected = trim_blank_lines(&body, &line_spans(&body)).map(|(a, b)| body[a..b].to_string());
            prop_assert_eq!(c.map(|c| c.text), expected);
        }
    }
}
