//! `hearth-fake-provider --listen 127.0.0.1:4300 [--record]`: prints the root URL on one
//! line, then serves the fake providers (a benchmark target, or a manual test server).

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::TcpListener;

/// A fake of six AI providers' HTTP APIs (OpenAI, Groq, Cerebras, OpenRouter, Gemini,
/// Anthropic); scenarios are chosen by `fake-<scenario>-` inside the API key.
#[derive(Debug, Parser)]
#[command(name = "hearth-fake-provider", version)]
struct Args {
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:4300")]
    listen: SocketAddr,
    /// Keep the newest 10 000 requests, readable at GET /_fake/requests.
    #[arg(long)]
    record: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen).await?;
    println!("http://{}", listener.local_addr()?);
    hearth_fake_provider::serve(listener, args.record).await
}
