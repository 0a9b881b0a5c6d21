//! Which port of a task a check talks to: the app's declared ports and
//! the host ports its task got, matched the way Marathon matches them.

use super::{AppDefinition, DeclaredPort, HealthCheck};

/// The port a check probes on a task: the check's `port` when it has one,
/// else the port of the declared port at `portIndex` (default 0).
///
/// `host_ports` are the task's host ports as the launcher assigned them
/// (`InstanceTask::host_ports` of [`crate::state::instance`]): one for each
/// declared port that wants a host port (`host_port` not `None`), in
/// declaration order ([`AppDefinition::declared_ports`]).
///
/// - Marathon-level checks (HTTP, HTTPS, TCP) probe from the scheduler, so
///   they take the host port. `None` when the index addresses no declared
///   port, a port without a host port (a container-network port: reaching
///   it would need the container's IP), or a host port the task lacks.
/// - Mesos-level checks (COMMAND, MESOS_*) run inside the task's network,
///   so, as Marathon's `MesosCheckWithPorts.effectivePort` does, they
///   prefer a port mapping's container port (when not 0) to the host port.
pub fn port_of(app: &AppDefinition, check: &HealthCheck, host_ports: &[u64]) -> Option<u16> {
    if let Some(port) = check.port {
        return Some(port);
    }
    let index = usize::try_from(check.port_index.unwrap_or(0)).ok()?;
    let declared = app.declared_ports();
    let wanted = declared.get(index)?;
    let mapped = app
        .container
        .as_ref()
        .is_some_and(|c| !c.port_mappings.is_empty());
    if check.protocol.is_mesos() && mapped && wanted.port != 0 {
        return Some(wanted.port);
    }
    host_port_at(&declared, index, host_ports)
}

/// The task's host port for the declared port at `index`: `None` when the
/// index addresses no declared port, a port without a host port, or a host
/// port the task lacks. `host_ports` hold one port per declared port that
/// wants a host port, in declaration order.
pub fn host_port_at(
    declared: &[DeclaredPort<'_>],
    index: usize,
    host_ports: &[u64],
) -> Option<u16> {
    declared.get(index)?.host_port?;
    let position = declared[..index]
        .iter()
        .filter(|d| d.host_port.is_some())
        .count();
    u16::try_from(*host_ports.get(position)?).ok()
}
