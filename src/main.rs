//! The `confab` binary: parse settings, start the server, stop on SIGINT/SIGTERM; or print a
//! join token; or create a room on a running server (`confab room create`).

use clap::{Args, Parser, Subcommand};
use confab::auth::{unix_now, Auth, Claims};
use confab::protocol::{Role, RoomMode};
use confab::Settings;
use std::process::ExitCode;

/// confab: a video-conferencing server (WebRTC SFU + signalling + web client).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Print a join token and a join link (needs the server's auth secret).
    Token(TokenArgs),
    /// Rooms on a running server, through its room API (needs its --api-key).
    #[command(subcommand)]
    Room(RoomCommand),
}

#[derive(Subcommand)]
enum RoomCommand {
    /// Create a room and print its host, invite (and, for a webinar, presenter) links.
    Create(CreateArgs),
}

#[derive(Args)]
struct CreateArgs {
    /// Room name [default: an unguessable one]
    #[arg(long)]
    name: Option<String>,
    /// Make it a webinar (joiners watch; panelists use the presenter link).
    #[arg(long)]
    webinar: bool,
    /// The server's room API key.
    #[arg(long, env = "CONFAB_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The server, as http://host:port.
    #[arg(long, default_value = "http://localhost:8080")]
    server: String,
}

#[derive(Args)]
struct TokenArgs {
    /// Room the token admits to.
    #[arg(long)]
    room: String,
    /// Display name.
    #[arg(long)]
    name: String,
    /// Role in the room: host, presenter or audience.
    #[arg(long, value_parser = parse_role, default_value = "presenter")]
    role: Role,
    /// Identity across reconnects (what a removal bans) [default: the name]
    #[arg(long)]
    sub: Option<String>,
    /// Open the room as a webinar if this token's join opens it.
    #[arg(long)]
    webinar: bool,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 24 * 3600)]
    ttl: u64,
    /// The server's auth secret.
    #[arg(long, env = "CONFAB_AUTH_SECRET", hide_env_values = true)]
    secret: String,
    /// Base URL of the server for the printed link.
    #[arg(long, default_value = "http://localhost:8080")]
    base_url: String,
}

fn parse_role(s: &str) -> Result<Role, String> {
    match s {
        "host" => Ok(Role::Host),
        "presenter" => Ok(Role::Presenter),
        "audience" => Ok(Role::Audience),
        _ => Err(format!(
            "unknown role {s:?}: use host, presenter or audience"
        )),
    }
}

fn token(args: TokenArgs) -> ExitCode {
    if !confab::protocol::valid_room_name(&args.room) {
        eprintln!("confab: room names are 1–64 letters, digits, '-', '_' or '.'");
        return ExitCode::from(2);
    }
    let claims = Claims {
        room: args.room.clone(),
        name: args.name,
        role: args.role,
        exp: unix_now() + args.ttl,
        sub: args.sub,
        mode: args.webinar.then_some(RoomMode::Webinar),
    };
    match Auth::new(Some(&args.secret)).issue(&claims) {
        Some(t) => {
            println!("{t}");
            println!(
                "{}/?room={}&token={t}",
                args.base_url.trim_end_matches('/'),
                args.room
            );
            ExitCode::SUCCESS
        }
        None => {
            eprintln!("confab: the secret must not be empty");
            ExitCode::from(2)
        }
    }
}

async fn room_create(args: CreateArgs) -> ExitCode {
    let body = serde_json::json!({
        "name": args.name,
        "mode": if args.webinar { "webinar" } else { "meeting" },
    });
    let answer = confab::api_client::call(
        &args.server,
        "POST",
        "/api/rooms",
        Some(&args.api_key),
        Some(&body),
    )
    .await;
    match answer {
        Ok(a) if a.status == 201 => {
            let b = &a.body;
            println!("room:           {}", b["room"].as_str().unwrap_or_default());
            println!(
                "host link:      {}",
                b["host_link"].as_str().unwrap_or_default()
            );
            if let Some(p) = b["presenter_link"].as_str() {
                println!("presenter link: {p}");
            }
            println!(
                "invite link:    {}",
                b["invite_link"].as_str().unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(a) => {
            let e = &a.body["error"];
            eprintln!(
                "confab: {} ({}, HTTP {})",
                e["message"].as_str().unwrap_or("the server refused"),
                e["code"].as_str().unwrap_or("unknown"),
                a.status
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("confab: {e}");
            ExitCode::FAILURE
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(args)) => return token(args),
        Some(Command::Room(RoomCommand::Create(args))) => return room_create(args).await,
        None => {}
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = match cli.settings.resolve() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("confab: {e}");
            return ExitCode::from(2);
        }
    };
    if config.auth_secret.is_none() {
        tracing::warn!("no auth secret: open mode, anyone who reaches this server can open a room and join any room whose name they know (hosts need the host link); see README: open mode");
    }
    match confab::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confab: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
