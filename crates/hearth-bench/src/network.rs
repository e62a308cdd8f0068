//! Where the server runs relative to the load generator: over loopback (the default), or as two
//! hosts on one machine (`rooms --network veth`).
//!
//! Over loopback the receiving end's TCP work (the `net_rx` softirq) and the wake-ups of the
//! reading threads run inside the writer's own `send` system call, and the kernel charges them to
//! the writer: a server fanning a post out to 10 000 local sockets pays for the clients' receive
//! path too. A deployment's clients are other machines, which do that work themselves. So with
//! `veth` the server runs in a network namespace of its own, joined to the generator by a veth
//! pair, pinned to CPU 0 while the generator is pinned to CPU 1, and each side's receive work is
//! steered to its own CPU with RPS (`rps_cpus`), as a second host's would be. The server still
//! pays its own transmit path, and the ACKs it receives are processed on its core.
//!
//! Everything is set up with iproute2's `ip` and util-linux's `taskset`, and needs root.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// The server's core with `--network veth`.
const SERVER_CPU: usize = 0;
/// The generator's core with `--network veth`.
const GENERATOR_CPU: usize = 1;
/// The generator's end of the veth pair, in the bench's own namespace.
const GENERATOR_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 1);
/// The server's end, inside the namespace.
const SERVER_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 231, 0, 2);
/// Sockets one source address can open towards one server port: the ephemeral port range
/// (`net.ipv4.ip_local_port_range`, 32768–60999 by default). Over loopback the bench spreads its
/// sockets over 127.0.0.2, 127.0.0.3, …; over veth there is one generator address.
pub const SOCKETS_PER_ADDRESS: usize = 28_000;

/// `rooms --network`: how the generator reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum NetworkKind {
    /// Both on loopback, sharing the machine's cores: the receiving end's TCP work is charged to
    /// the sender.
    #[default]
    Loopback,
    /// Two network namespaces joined by a veth pair, the server on CPU 0 and the generator on
    /// CPU 1, each side's receive work on its own CPU: as two hosts (needs root).
    Veth,
}

impl NetworkKind {
    /// Its `--network` value.
    pub fn name(self) -> &'static str {
        match self {
            NetworkKind::Loopback => "loopback",
            NetworkKind::Veth => "veth",
        }
    }

    /// How the report describes it.
    pub fn description(self) -> String {
        match self {
            NetworkKind::Loopback => "loopback".into(),
            NetworkKind::Veth => format!(
                "veth between two network namespaces, server on CPU {SERVER_CPU}, generator on CPU {GENERATOR_CPU}, \
                 each side's receive work steered to its own CPU (RPS)"
            ),
        }
    }
}

/// Where a measured process (the server, the floor writer) runs and the address it listens on.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The address to listen on (with port 0: any free port); clients connect to it.
    pub listen: IpAddr,
    /// Program and arguments the measured command is started through (empty on loopback):
    /// `ip netns exec NS taskset -c 0`. Each of them execs the next, so the child's PID is the
    /// measured process's own and `/proc/PID/stat` reads its CPU.
    prefix: Vec<String>,
}

impl Placement {
    /// On this machine's loopback, sharing its cores.
    pub fn loopback() -> Self {
        Self { listen: IpAddr::V4(Ipv4Addr::LOCALHOST), prefix: Vec::new() }
    }

    /// A command that runs `program` here (arguments still to add).
    pub fn command(&self, program: &Path) -> Command {
        match self.prefix.split_first() {
            None => Command::new(program),
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(program);
                command
            }
        }
    }

    /// Checks that process `pid`, started with [`Placement::command`], is `program` by now (its
    /// `/proc/PID/comm`): were it still `ip` or `taskset`, or a child of them, the CPU read from
    /// `/proc/PID/stat` would not be the measured process's.
    pub fn check_exec(&self, pid: u32, program: &Path) -> anyhow::Result<()> {
        if self.prefix.is_empty() {
            return Ok(());
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).with_context(|| format!("/proc/{pid}/comm"))?;
        let comm = comm.trim_end();
        let name = program.file_name().context("the program's file name")?.as_encoded_bytes();
        // The kernel keeps the first 15 bytes of the name.
        if comm.as_bytes() != &name[..name.len().min(15)] {
            bail!(
                "process {pid} is {comm:?}, not {}: `{}` did not exec it, so its CPU could not be read",
                program.display(),
                self.prefix.join(" ")
            );
        }
        Ok(())
    }
}

/// The namespace, the veth pair and the pinning of `--network veth`; dropping it deletes them
/// (it is created before any of them, so an error half-way removes what was made).
#[derive(Debug)]
pub struct Network {
    /// `hearth-bench-<pid>`.
    namespace: String,
    /// The pair's end in the bench's namespace.
    generator_link: String,
    /// The pair's end in the server's namespace.
    server_link: String,
}

impl Network {
    /// Creates the namespace and the veth pair, steers each side's receive work to its CPU and
    /// pins every thread of this process (the generator) to [`GENERATOR_CPU`]; threads started
    /// later inherit it. Needs root and two CPUs.
    pub fn create() -> anyhow::Result<Self> {
        if effective_uid() != Some(0) {
            bail!("--network veth must run as root: it creates a network namespace and a veth pair with `ip`");
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            bail!(
                "--network veth needs 2 CPUs (the server on CPU {SERVER_CPU}, the generator on CPU {GENERATOR_CPU}); \
                 this machine has {cpus}"
            );
        }
        let pid = std::process::id();
        // Interface names have at most 15 bytes; a PID has at most 7 digits.
        let network = Self {
            namespace: format!("hearth-bench-{pid}"),
            generator_link: format!("hb-gen-{pid}"),
            server_link: format!("hb-srv-{pid}"),
        };
        // Leftovers of an earlier bench with the same PID (killed before it could clean up).
        network.remove();
        let (ns, generator, server) = (&network.namespace, &network.generator_link, &network.server_link);
        run("ip", &["netns", "add", ns])?;
        run("ip", &["link", "add", generator, "type", "veth", "peer", "name", server, "netns", ns])?;
        run("ip", &["addr", "add", &format!("{GENERATOR_ADDRESS}/24"), "dev", generator])?;
        run("ip", &["link", "set", generator, "up"])?;
        run("ip", &["-n", ns, "addr", "add", &format!("{SERVER_ADDRESS}/24"), "dev", server])?;
        run("ip", &["-n", ns, "link", "set", server, "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        // Without RPS a veth delivers into the receiving side's TCP on the sending CPU, inside the
        // sender's system call, as loopback does: steer each side's receive work to its own core.
        let rps = |link: &str| format!("/sys/class/net/{link}/queues/rx-0/rps_cpus");
        std::fs::write(rps(generator), cpu_mask(GENERATOR_CPU))
            .with_context(|| format!("writing {}", rps(generator)))?;
        // `ip netns exec` remounts /sys for the namespace, where the server's end is seen.
        let steer_server = format!("echo {} > {}", cpu_mask(SERVER_CPU), rps(server));
        run("ip", &["netns", "exec", ns, "sh", "-c", &steer_server])?;
        let this_process = pid.to_string();
        run("taskset", &["-a", "-p", "-c", &GENERATOR_CPU.to_string(), &this_process])?;
        Ok(network)
    }

    /// The server's side: inside the namespace, pinned to [`SERVER_CPU`].
    pub fn server_placement(&self) -> Placement {
        let prefix = ["ip", "netns", "exec", &self.namespace, "taskset", "-c", &SERVER_CPU.to_string()];
        Placement { listen: IpAddr::V4(SERVER_ADDRESS), prefix: prefix.map(str::to_owned).to_vec() }
    }

    /// Deletes the pair and the namespace if they exist, saying so if the namespace stays.
    fn remove(&self) {
        // Deleting one end removes the pair at once; the namespace's own devices would go only
        // when the kernel gets round to cleaning the namespace up.
        if Path::new("/sys/class/net").join(&self.generator_link).exists() {
            let _ = run("ip", &["link", "del", &self.generator_link]);
        }
        // Where `ip netns add` mounts it.
        let exists = Path::new("/var/run/netns").join(&self.namespace).exists();
        if exists && let Err(error) = run("ip", &["netns", "del", &self.namespace]) {
            eprintln!("could not delete network namespace {}: {error:#}", self.namespace);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The hexadecimal CPU mask `rps_cpus` takes, of one CPU.
fn cpu_mask(cpu: usize) -> String {
    format!("{:x}", 1u128 << cpu)
}

/// This process's effective user id (`Uid:` in `/proc/self/status`: real, effective, …).
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
    uids.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `program args…`; an error carries what it printed.
fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program} (needed for --network veth)"))?;
    if !output.status.success() {
        bail!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks_are_hexadecimal() {
        assert_eq!(cpu_mask(0), "1");
        assert_eq!(cpu_mask(1), "2");
        assert_eq!(cpu_mask(5), "20");
    }

    #[test]
    fn loopback_runs_the_program_itself() {
        let command = Placement::loopback().command(Path::new("/bin/hearth"));
        assert_eq!(command.get_program(), "/bin/hearth");
        assert!(Placement::loopback().check_exec(u32::MAX, Path::new("/bin/hearth")).is_ok());
    }
}
