//! Prints the API versions kmirror negotiates with a broker: kmirror's own
//! client connects (ApiVersions, then its negotiation) and, for every API
//! kmirror speaks, prints `API OURS_MIN-OURS_MAX CHOSEN` (or `none` with the
//! reason). `cargo xtask compat` runs it against each Apache Kafka version.
//!
//! Usage: `api_versions BOOTSTRAP`

use kmirror_protocol::api::SUPPORTED_APIS;

fn main() -> std::process::ExitCode {
    let Some(bootstrap) = std::env::args().nth(1) else {
        eprintln!("usage: api_versions BOOTSTRAP");
        return std::process::ExitCode::FAILURE;
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("api_versions: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = kmirror_pool::ClientConfig {
        bootstrap_servers: vec![bootstrap.clone()],
        ..Default::default()
    };
    let result = runtime.block_on(async {
        let cluster = kmirror_pool::Cluster::connect(config).await?;
        let metadata = cluster.metadata().await?;
        let id = metadata.brokers.keys().copied().min().unwrap_or_default();
        let connection = cluster.connection_to_broker(id).await?;
        Ok::<_, kmirror_pool::PoolError>(connection.versions().clone())
    });
    let versions = match result {
        Ok(versions) => versions,
        Err(e) => {
            eprintln!("api_versions: {bootstrap}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for spec in SUPPORTED_APIS {
        let chosen = versions
            .version(spec.key)
            .map_or_else(|e| format!("none ({e})"), |v| v.to_string());
        println!(
            "{:?} {}-{} {chosen}",
            spec.key, spec.ours.min, spec.ours.max
        );
    }
    std::process::ExitCode::SUCCESS
}
