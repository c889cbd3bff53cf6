use stsmend_e2e::ControlPlane;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("stsmend_e2e=debug")
        .try_init();
    let t = std::time::Instant::now();
    let cp = ControlPlane::start().await.unwrap();
    eprintln!("started in {:?}", t.elapsed());
    eprintln!("{}", cp.kubectl(&["get", "ns,lease", "-A"]).await.unwrap());
    cp.shutdown().await;
}
