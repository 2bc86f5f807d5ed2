//! The studio without HTTP: grid search, reconciliation of the registry with run
//! folders after a crash, and the checks before anything is written.

use std::path::Path;
use std::time::Duration;

use lathe_studio::{DatasetSource, NewExperiment, Registry, Studio, StudioError, StudioOptions};
use serde_json::{json, Map, Value};

fn open(root: &Path) -> Studio {
    Studio::open(StudioOptions {
        root: root.to_path_buf(),
        // No worker runs in these tests: nothing is started.
        worker: "/nonexistent/lathe".into(),
        max_jobs: 1,
        stop_grace: Duration::from_secs(1),
    })
    .unwrap()
}

fn with_dataset(root: &Path) -> Studio {
    let studio = open(root);
    let csv = root.join("qa.csv");
    std::fs::write(
        &csv,
        "question,answer\nhi,hello\nbye,goodbye\nwhy,because\n",
    )
    .unwrap();
    let record = studio
        .import_dataset("qa", DatasetSource::File(csv), &Map::new())
        .unwrap();
    assert_eq!(record.validation, None);
    assert_eq!(record.samples, 3);
    studio
}

fn settings(pairs: Value) -> Map<String, Value> {
    pairs.as_object().unwrap().clone()
}

#[test]
fn a_grid_makes_one_experiment_per_effective_combination() {
    let dir = tempfile::tempdir().unwrap();
    let studio = with_dataset(dir.path());
    let base = NewExperiment {
        name: "g".into(),
        dataset: "qa".into(),
        settings: settings(json!({"training.epochs": 2})),
        ..Default::default()
    };
    let grid = settings(json!({"training.lora": [true, false], "training.lora_r": [4, 8]}));
    let made = studio.create_grid(&base, &grid).unwrap();
    let names: Vec<&str> = made.iter().map(|r| r.name.as_str()).collect();
    // Without LoRA the rank does not matter: (false, 8) repeats (false, 4).
    assert_eq!(
        names,
        [
            "g_lora_true_lora_r_4",
            "g_lora_false_lora_r_4",
            "g_lora_true_lora_r_8"
        ]
    );
    let detail = studio.experiment("g_lora_true_lora_r_8").unwrap();
    assert_eq!(detail.settings["training.lora_r"], 8);
    assert_eq!(detail.settings["training.epochs"], 2);
    assert_eq!(detail.summary.record.status, "created");

    // A name that exists already stops the whole grid before anything is written.
    let err = studio.create_grid(&base, &grid).unwrap_err();
    assert!(matches!(err, StudioError::Conflict(_)), "{err}");
    let bad = settings(json!({"training.learning_rate": [0.001, -1]}));
    let other = NewExperiment {
        name: "h".into(),
        ..base.clone()
    };
    assert!(matches!(
        studio.create_grid(&other, &bad),
        Err(StudioError::Invalid(_))
    ));
    assert_eq!(studio.experiments().unwrap().len(), 3);
    assert!(!dir
        .path()
        .join("experiments/h_learning_rate_0.001")
        .exists());
}

#[test]
fn reopening_reconciles_runs_whose_workers_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let studio = with_dataset(dir.path());
    for name in ["crashed", "done"] {
        studio
            .create_experiment(&NewExperiment {
                name: name.into(),
                dataset: "qa".into(),
                ..Default::default()
            })
            .unwrap();
    }
    drop(studio);
    // The registry says both run, with a process id that is no worker.
    let registry = Registry::open(&dir.path().join("lathe.db")).unwrap();
    let now = lathe_studio::runs::now();
    for name in ["crashed", "done"] {
        let mut e = registry.experiment(name).unwrap().unwrap();
        e.status = "running".into();
        e.pid = Some(std::process::id());
        e.started = Some(now);
        registry.update_experiment(&e).unwrap();
    }
    drop(registry);
    // One run's folder says it finished (the worker wrote that before it exited).
    let done = dir.path().join("experiments/done/status.json");
    std::fs::write(
        &done,
        json!({"status": "finished", "info": "Runtime: 00:00:03", "time": now + 1.0}).to_string(),
    )
    .unwrap();

    let studio = open(dir.path());
    let crashed = studio.experiment_record("crashed").unwrap();
    assert_eq!(crashed.status, "failed");
    assert_eq!(crashed.info, "worker exited");
    assert_eq!(crashed.pid, None);
    let status: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("experiments/crashed/status.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(status["status"], "failed");
    let done = studio.experiment_record("done").unwrap();
    assert_eq!(
        (done.status.as_str(), done.info.as_str()),
        ("finished", "Runtime: 00:00:03")
    );
}

#[test]
fn a_mapping_that_fails_its_checks_is_kept_and_blocks_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let studio = with_dataset(dir.path());
    let changed = studio
        .update_dataset(
            "qa",
            &settings(json!({"dataset.answer_column": "missing"})),
            None,
        )
        .unwrap();
    let problem = changed.validation.unwrap();
    assert!(problem.contains("missing"), "{problem}");
    let err = studio
        .create_experiment(&NewExperiment {
            name: "x".into(),
            dataset: "qa".into(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("sanity checks"), "{err}");
    assert!(!dir.path().join("experiments/x").exists());
    let err = studio
        .update_dataset("qa", &settings(json!({"training.epochs": 1})), None)
        .unwrap_err();
    assert!(
        err.to_string().contains("not a column mapping setting"),
        "{err}"
    );
    let fixed = studio
        .update_dataset(
            "qa",
            &settings(json!({"dataset.answer_column": "answer"})),
            None,
        )
        .unwrap();
    assert_eq!(fixed.validation, None);
}
