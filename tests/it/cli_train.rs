//! `uhc train` and `uhc eval` end to end on a small example (few epochs, debug build).

use std::process::Command;

fn uhc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_uhc"))
}

#[test]
fn train_writes_weights_that_eval_reads() {
    let dir = std::env::temp_dir().join(format!("uhc-cli-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let weights = dir.join("w.json");
    let out = uhc()
        .args([
            "train",
            "examples/digits_small.uh",
            "--task",
            "digits4",
            "--epochs",
            "2",
            "--out",
        ])
        .arg(&weights)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("epoch ").count(), 2, "{err}");
    let w: serde_json::Value = serde_json::from_slice(&std::fs::read(&weights).unwrap()).unwrap();
    assert_eq!(w["format"], "uhc-weights/2");
    assert_eq!(w["task"], "digits4");
    assert!(w["split"].as_str().unwrap().contains("test 0.2"));
    assert_eq!(w["arch"], "digits_small");
    // h.V: a 16-port mesh has 120 MZIs (θ, φ each) and 16 input phases.
    let mesh = &w["nodes"][0];
    assert_eq!(mesh["prim"], "mesh");
    assert_eq!(mesh["fields"]["theta"].as_array().unwrap().len(), 120);
    assert_eq!(mesh["fields"]["gamma"].as_array().unwrap().len(), 16);

    let out = uhc()
        .args([
            "eval",
            "examples/digits_small.uh",
            "--task",
            "digits4",
            "--draws",
            "3",
            "--json",
            "--weights",
        ])
        .arg(&weights)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acc = v["accuracy"].as_f64().unwrap();
    assert!(acc > 0.5, "{v}");
    let mean = v["noisy_accuracy_mean"].as_f64().unwrap();
    assert!((v["accuracy_drop"].as_f64().unwrap() - (acc - mean)).abs() < 1e-12);
    assert_eq!(v["mzi_count"], 431);
    let e = v["energy_j"].as_f64().unwrap();
    assert!(e > 1e-12 && e < 1e-6, "energy in joules: {e}");

    // Weights for another graph are refused with a reason: status 1 (read, but refused;
    // 2 is for files that cannot be read).
    let out = uhc()
        .args([
            "eval",
            "examples/digits_deep.uh",
            "--task",
            "digits4",
            "--weights",
        ])
        .arg(&weights)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("retrain"));
    let out = uhc()
        .args([
            "eval",
            "examples/digits_small.uh",
            "--task",
            "nope",
            "--epochs",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}
