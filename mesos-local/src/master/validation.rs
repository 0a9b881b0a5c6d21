//! `validation::scheduler::call::validate` and the SUBSCRIBE checks that
//! end in an ERROR event rather than a 4xx.

use mesos_proto::scheduler::{Call, call::Type};
use mesos_proto::v1::{self, framework_info::capability};

use crate::wire::{valid_uuid, validate_id};

/// Checks the structure of a call; the `Err` text follows "Failed to
/// validate scheduler::Call: ".
pub fn validate_call(call: &Call) -> Result<Type, String> {
    let Some(raw) = call.r#type else {
        return Err("Expecting 'type' to be present".into());
    };
    let ty = Type::try_from(raw).unwrap_or(Type::Unknown);
    if ty == Type::Subscribe {
        let Some(sub) = &call.subscribe else {
            return Err("Expecting 'subscribe' to be present".into());
        };
        let info = &sub.framework_info;
        if info.user.is_empty() {
            return Err("Expecting 'subscribe.framework_info.user' to be present".into());
        }
        if info.name.is_empty() {
            return Err("Expecting 'subscribe.framework_info.name' to be present".into());
        }
        if call.framework_id.as_ref().map(|f| &f.value) != info.id.as_ref().map(|f| &f.value) {
            return Err("'framework_id' differs from 'subscribe.framework_info.id'".into());
        }
        return Ok(ty);
    }
    if call
        .framework_id
        .as_ref()
        .is_none_or(|f| f.value.is_empty())
    {
        return Err("Expecting 'framework_id' to be present".into());
    }
    let present = |yes: bool, name: &str| {
        if yes {
            Ok(())
        } else {
            Err(format!("Expecting '{name}' to be present"))
        }
    };
    match ty {
        Type::Accept => present(call.accept.is_some(), "accept")?,
        Type::Decline => present(call.decline.is_some(), "decline")?,
        Type::AcceptInverseOffers => present(
            call.accept_inverse_offers.is_some(),
            "accept_inverse_offers",
        )?,
        Type::DeclineInverseOffers => present(
            call.decline_inverse_offers.is_some(),
            "decline_inverse_offers",
        )?,
        Type::Kill => present(call.kill.is_some(), "kill")?,
        Type::Shutdown => present(call.shutdown.is_some(), "shutdown")?,
        Type::Acknowledge => {
            let Some(ack) = &call.acknowledge else {
                return Err("Expecting 'acknowledge' to be present".into());
            };
            if !valid_uuid(&ack.uuid) {
                return Err(format!(
                    "'acknowledge.uuid' is not a valid UUID ({} bytes)",
                    ack.uuid.len()
                ));
            }
        }
        Type::Reconcile => present(call.reconcile.is_some(), "reconcile")?,
        Type::Message => present(call.message.is_some(), "message")?,
        Type::Request => present(call.request.is_some(), "request")?,
        Type::UpdateFramework => {
            let Some(update) = &call.update_framework else {
                return Err("Expecting 'update_framework' to be present".into());
            };
            if update.framework_info.id.as_ref().map(|f| &f.value)
                != call.framework_id.as_ref().map(|f| &f.value)
            {
                return Err(
                    "'framework_id' differs from 'update_framework.framework_info.id'".into(),
                );
            }
        }
        _ => {}
    }
    Ok(ty)
}

/// SUBSCRIBE under `--authenticate_http_frameworks`, as Mesos's
/// `validation::scheduler::call::validate` and its HTTP handler: a
/// `FrameworkInfo.principal` must be the authenticated principal (the `Err`
/// text follows "Failed to validate scheduler::Call: ", a 400); an unset
/// one becomes the authenticated principal, which is then authorized and
/// shown in `/master/state`.
pub fn authenticated_principal(
    info: &mut v1::FrameworkInfo,
    authenticated: Option<&str>,
) -> Result<(), String> {
    let Some(p) = authenticated else {
        return Ok(());
    };
    match &info.principal {
        Some(set) if set != p => Err(format!(
            "Authenticated principal '{p}' does not match principal '{set}' set in `FrameworkInfo`"
        )),
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                principal = p,
                "setting 'principal' in FrameworkInfo because the framework authenticated with it but did not set it"
            );
            info.principal = Some(p.to_string());
            Ok(())
        }
    }
}

/// Whether the framework has a capability.
pub fn has_capability(info: &v1::FrameworkInfo, cap: capability::Type) -> bool {
    info.capabilities
        .iter()
        .any(|c| c.r#type == Some(cap as i32))
}

/// Mesos's role name rule (`roles::validate`).
pub fn validate_role(role: &str) -> Result<(), String> {
    if role == "*" {
        return Ok(());
    }
    if role.is_empty() {
        return Err("Empty role name is invalid".into());
    }
    for part in role.split('/') {
        if part.is_empty() || part == "." || part == ".." || part.starts_with('-') {
            return Err(format!("Role '{role}' is invalid"));
        }
        if part
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '\\' || c == '*')
        {
            return Err(format!("Role '{role}' contains invalid characters"));
        }
    }
    Ok(())
}

/// The roles a framework subscribes with.
#[allow(deprecated)] // `role` is how non-MULTI_ROLE frameworks name theirs
pub fn framework_roles(info: &v1::FrameworkInfo) -> Vec<String> {
    if has_capability(info, capability::Type::MultiRole) {
        info.roles.clone()
    } else {
        vec![info.role.clone().unwrap_or_else(|| "*".into())]
    }
}

/// The checks that refuse a SUBSCRIBE with an ERROR event (200, then
/// close) rather than a 4xx.
#[allow(deprecated)]
pub fn validate_framework_info(info: &v1::FrameworkInfo) -> Result<(), String> {
    if let Some(id) = &info.id {
        validate_id(&id.value).map_err(|e| format!("Invalid framework ID: {e}"))?;
    }
    let timeout = info.failover_timeout.unwrap_or(0.0);
    if !timeout.is_finite() || timeout < 0.0 || timeout * 1e9 > i64::MAX as f64 {
        return Err(format!("Invalid failover_timeout: {timeout}"));
    }
    let multi = has_capability(info, capability::Type::MultiRole);
    if multi && info.role.is_some() {
        return Err(
            "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable".into(),
        );
    }
    if !multi && !info.roles.is_empty() {
        return Err(
            "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
                .into(),
        );
    }
    let roles = framework_roles(info);
    let mut seen = std::collections::HashSet::new();
    for role in &roles {
        validate_role(role)?;
        if !seen.insert(role) {
            return Err(format!(
                "'FrameworkInfo.roles' contains duplicate role '{role}'"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesos_proto::scheduler::call;
    use mesos_proto::util::framework_id;

    #[test]
    fn subscribe_principal_must_be_the_authenticated_one_or_unset() {
        let mut info = v1::FrameworkInfo::default();
        assert_eq!(authenticated_principal(&mut info, None), Ok(()));
        assert_eq!(info.principal, None);
        assert_eq!(authenticated_principal(&mut info, Some("p")), Ok(()));
        assert_eq!(info.principal.as_deref(), Some("p"));
        assert_eq!(authenticated_principal(&mut info, Some("p")), Ok(()));
        assert_eq!(
            authenticated_principal(&mut info, Some("q")),
            Err(
                "Authenticated principal 'q' does not match principal 'p' set in `FrameworkInfo`"
                    .into()
            )
        );
    }

    fn subscribe(info_id: Option<&str>, call_id: Option<&str>) -> Call {
        Call {
            r#type: Some(Type::Subscribe as i32),
            framework_id: call_id.map(framework_id),
            subscribe: Some(call::Subscribe {
                framework_info: v1::FrameworkInfo {
                    user: "u".into(),
                    name: "n".into(),
                    id: info_id.map(framework_id),
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn subscribe_rules() {
        assert_eq!(validate_call(&subscribe(None, None)), Ok(Type::Subscribe));
        assert_eq!(
            validate_call(&subscribe(Some("a"), Some("a"))),
            Ok(Type::Subscribe)
        );
        assert!(
            validate_call(&subscribe(Some("a"), None))
                .unwrap_err()
                .contains("differs")
        );
        assert!(
            validate_call(&subscribe(None, Some("a")))
                .unwrap_err()
                .contains("differs")
        );
        let mut c = subscribe(None, None);
        c.subscribe.as_mut().unwrap().framework_info.user.clear();
        assert!(validate_call(&c).unwrap_err().contains("user"));
        c.subscribe = None;
        assert!(validate_call(&c).is_err());
        assert!(
            validate_call(&Call::default())
                .unwrap_err()
                .contains("'type'")
        );
    }

    #[test]
    fn other_calls_need_framework_id_and_their_message() {
        let mut c = Call {
            r#type: Some(Type::Acknowledge as i32),
            ..Default::default()
        };
        assert!(validate_call(&c).unwrap_err().contains("framework_id"));
        c.framework_id = Some(framework_id("f"));
        assert!(validate_call(&c).unwrap_err().contains("acknowledge"));
        c.acknowledge = Some(call::Acknowledge {
            uuid: vec![1, 2, 3],
            ..Default::default()
        });
        assert!(validate_call(&c).unwrap_err().contains("UUID"));
        c.acknowledge.as_mut().unwrap().uuid = vec![0; 16];
        assert_eq!(validate_call(&c), Ok(Type::Acknowledge));
        for ty in [Type::Teardown, Type::Revive, Type::Suppress] {
            let c = Call {
                r#type: Some(ty as i32),
                framework_id: Some(framework_id("f")),
                ..Default::default()
            };
            assert_eq!(validate_call(&c), Ok(ty));
        }
        let c = Call {
            r#type: Some(Type::Accept as i32),
            framework_id: Some(framework_id("f")),
            ..Default::default()
        };
        assert!(validate_call(&c).is_err());
    }

    #[test]
    #[allow(deprecated)]
    fn framework_info_semantic_rules() {
        let base = v1::FrameworkInfo {
            user: "u".into(),
            name: "n".into(),
            ..Default::default()
        };
        assert!(validate_framework_info(&base).is_ok());
        let multi = v1::framework_info::Capability {
            r#type: Some(capability::Type::MultiRole as i32),
        };
        let bad = [
            v1::FrameworkInfo {
                failover_timeout: Some(-1.0),
                ..base.clone()
            },
            v1::FrameworkInfo {
                failover_timeout: Some(f64::NAN),
                ..base.clone()
            },
            v1::FrameworkInfo {
                failover_timeout: Some(1e12),
                ..base.clone()
            },
            v1::FrameworkInfo {
                roles: vec!["a".into()],
                ..base.clone()
            },
            v1::FrameworkInfo {
                role: Some("a".into()),
                capabilities: vec![multi],
                ..base.clone()
            },
            v1::FrameworkInfo {
                roles: vec!["a".into(), "a".into()],
                capabilities: vec![multi],
                ..base.clone()
            },
            v1::FrameworkInfo {
                role: Some("a b".into()),
                ..base.clone()
            },
            v1::FrameworkInfo {
                id: Some(framework_id("a/b")),
                ..base.clone()
            },
        ];
        for info in bad {
            assert!(validate_framework_info(&info).is_err(), "{info:?}");
        }
        let ok = v1::FrameworkInfo {
            roles: vec!["web".into()],
            capabilities: vec![multi],
            ..base
        };
        assert!(validate_framework_info(&ok).is_ok());
        assert_eq!(framework_roles(&ok), vec!["web".to_string()]);
    }
}
