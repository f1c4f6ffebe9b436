//! `simile app`: serves the App on a local address until Ctrl-C.
use std::net::{IpAddr, SocketAddr};

use anyhow::{bail, Context, Result};
use clap::Args;
use simile::Simile;

#[derive(Args, Debug)]
pub struct AppArgs {
    /// Dataset to open first (default: the first one).
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Address to listen on. Anything but loopback exposes every dataset's images to the network.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 5151)]
    pub port: u16,
}

pub fn run(simile: Simile, args: AppArgs, json: bool) -> Result<()> {
    if let Some(d) = &args.dataset {
        if !simile.dataset_exists(d)? {
            bail!(
                "dataset '{d}' not found (datasets here: {})",
                simile.list_datasets()?.join(", ")
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (is another App running? try --port)"))?;
        let bound = listener.local_addr()?;
        let url = simile_app::url_for(bound, args.dataset.as_deref());
        if json {
            println!("{}", serde_json::json!({"url": url, "addr": bound.to_string()}));
        } else {
            if !bound.ip().is_loopback() {
                eprintln!("warning: listening on {bound}: anyone who can reach this address can browse every dataset's images");
            }
            println!("simile App: open {url}   (Ctrl-C stops it)");
        }
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        simile_app::serve(listener, simile, shutdown)
            .await
            .context("the App server failed")
    })
}
