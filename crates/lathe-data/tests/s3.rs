//! Imports from S3-compatible storage against a real S3 server started in the test
//! (`s3s-fs`: the S3 REST API over a local folder), signed and anonymous.

use std::net::SocketAddr;
use std::path::Path;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use lathe_data::{import_s3, list_s3, S3Location, Table};
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Serves `root` (one folder per bucket) over S3 on a free local port.
fn serve(runtime: &tokio::runtime::Runtime, root: &Path, signed: bool) -> SocketAddr {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = S3ServiceBuilder::new(fs);
    if signed {
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    }
    let service = builder.build();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime.spawn(async move {
        loop {
            let (socket, _) = listener.accept().await.unwrap();
            let service = service.clone();
            tokio::spawn(async move {
                let _ = ConnBuilder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    addr
}

fn location(addr: SocketAddr, bucket: &str, signed: bool) -> S3Location {
    S3Location {
        bucket: bucket.into(),
        endpoint: Some(format!("http://{addr}")),
        region: None,
        access_key: signed.then(|| ACCESS_KEY.into()),
        secret_key: signed.then(|| SECRET_KEY.into()),
    }
}

#[test]
fn s3_files_are_listed_and_imported() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let storage = tempfile::tempdir().unwrap();
    let folder = storage.path().join("datasets/chat");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("train.csv"), "instruction,output\na,b\nc,d\n").unwrap();
    std::fs::write(
        folder.join("valid.jsonl"),
        "{\"instruction\": \"e\", \"output\": \"f\"}\n",
    )
    .unwrap();
    std::fs::write(folder.join("notes.txt"), "not data").unwrap();
    std::fs::write(storage.path().join("datasets/broken.csv"), "a,b\n1,2,3\n").unwrap();
    let signed = serve(&runtime, storage.path(), true);
    let open = serve(&runtime, storage.path(), false);
    let work = tempfile::tempdir().unwrap();

    let chat = location(signed, "s3://datasets/chat/", true);
    assert_eq!(
        list_s3(&chat).unwrap(),
        ["chat/train.csv", "chat/valid.jsonl"]
    );
    let files = import_s3(&chat, &[], &work.path().join("chat")).unwrap();
    assert_eq!(
        files,
        [
            work.path().join("chat/train.csv"),
            work.path().join("chat/valid.jsonl")
        ]
    );
    assert_eq!(Table::read(&files[0]).unwrap().rows.len(), 2);

    // Anonymous, unsigned requests to a server that allows them.
    let anonymous = location(open, "datasets", false);
    let files = import_s3(
        &anonymous,
        &["chat/valid.jsonl".into()],
        &work.path().join("anon"),
    )
    .unwrap();
    assert_eq!(files, [work.path().join("anon/valid.jsonl")]);

    // Errors: wrong secret, anonymous where keys are needed, a missing key, a broken
    // file; none leaves a folder behind or shows the secret.
    let mut wrong = chat.clone();
    wrong.secret_key = Some("not-the-secret".into());
    let e = import_s3(&wrong, &[], &work.path().join("wrong"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("s3://datasets/chat/") && !e.contains("not-the-secret"),
        "{e}"
    );
    let e = list_s3(&location(signed, "datasets", false))
        .unwrap_err()
        .to_string();
    assert!(e.contains("s3://datasets"), "{e}");
    let e = import_s3(
        &chat,
        &["chat/absent.csv".into()],
        &work.path().join("absent"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("s3://datasets/chat/absent.csv"), "{e}");
    let e = import_s3(
        &location(signed, "datasets", true),
        &["broken.csv".into()],
        &work.path().join("broken"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("broken.csv, row 1"), "{e}");
    let e = import_s3(
        &S3Location {
            secret_key: None,
            ..chat.clone()
        },
        &[],
        &work.path().join("half"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("both"), "{e}");
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["anon", "chat"]);
}
