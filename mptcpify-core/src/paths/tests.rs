use super::*;

fn iface(index: u32, name: &str, up: bool, ips: &[(&str, u8)]) -> Interface {
    Interface {
        index,
        name: name.into(),
        up,
        loopback: name == "lo",
        addresses: ips
            .iter()
            .map(|(ip, scope)| Address {
                ip: ip.parse().unwrap(),
                scope: *scope,
                tentative: false,
            })
            .collect(),
    }
}

fn host() -> Vec<Interface> {
    vec![
        iface(1, "lo", true, &[("127.0.0.1", 254), ("::1", 254)]),
        iface(2, "eth0", true, &[("192.0.2.2", 0), ("fe80::1", 253)]),
        iface(3, "eth1", true, &[("198.51.100.2", 0), ("2001:db8::2", 0)]),
        iface(4, "eth2", false, &[("203.0.113.2", 0)]),
    ]
}

fn endpoint(id: u8, ip: &str, flags: u32) -> Endpoint {
    Endpoint {
        id,
        ip: Some(ip.parse().unwrap()),
        port: 0,
        flags,
        ifindex: 0,
    }
}

const DEFAULT: Limits = Limits {
    subflows: 2,
    add_addr_accepted: 0,
};

/// Applies a plan to a simulated kernel: what mptcpify writes, the kernel
/// does (ids from 1 up, the next free one).
fn apply(plan: &Plan, endpoints: &mut Vec<Endpoint>, limits: &mut Limits) -> Vec<u8> {
    endpoints.retain(|e| !plan.remove.iter().any(|a| a.id == e.id));
    let mut ids = Vec::new();
    for addition in &plan.add {
        let id = (1..=255u8)
            .find(|id| !endpoints.iter().any(|e| e.id == *id))
            .unwrap();
        endpoints.push(Endpoint {
            id,
            ip: Some(addition.candidate.ip),
            port: 0,
            flags: addition.flags,
            ifindex: addition.candidate.ifindex as i32,
        });
        ids.push(id);
    }
    if let Some(l) = plan.limits {
        *limits = l;
    }
    ids
}

/// `auto` from nothing on `usable`, written to a simulated kernel:
/// its endpoints, limits and the record.
fn configured(usable: &[Candidate], owner: &str) -> (Vec<Endpoint>, Limits, Record) {
    let plan = auto(usable, &[], DEFAULT, &Record::default(), Roles::Both, true).unwrap();
    let (mut endpoints, mut limits) = (Vec::new(), DEFAULT);
    let ids = apply(&plan, &mut endpoints, &mut limits);
    let record = record_after(&Record::default(), &plan, &ids, DEFAULT, owner);
    (endpoints, limits, record)
}

#[test]
fn usable_addresses_are_global_on_up_non_loopback_interfaces() {
    let all = classify(&host(), &[]);
    let why = |ip: &str| {
        all.iter()
            .find(|(c, _)| c.ip == ip.parse::<IpAddr>().unwrap())
            .unwrap()
            .1
    };
    assert_eq!(why("127.0.0.1"), Some(Unusable::Loopback));
    assert_eq!(why("fe80::1"), Some(Unusable::NotGlobal));
    assert_eq!(why("203.0.113.2"), Some(Unusable::Down));
    assert_eq!(why("192.0.2.2"), None);
    assert_eq!(why("2001:db8::2"), None);
    let chosen = classify(&host(), &["eth1".into()]);
    assert!(chosen
        .iter()
        .any(|(c, w)| c.interface == "eth0" && *w == Some(Unusable::NotChosen)));
    assert_eq!(usable(&host(), &["eth1".into()]).len(), 2);
    let mut tentative = host();
    tentative[2].addresses[1].tentative = true;
    assert_eq!(usable(&tentative, &[]).len(), 2);
}

#[test]
fn auto_adds_every_usable_address_and_raises_the_limits() {
    let usable = usable(&host(), &[]);
    let plan = auto(&usable, &[], DEFAULT, &Record::default(), Roles::Both, true).unwrap();
    assert_eq!(plan.add.len(), 3);
    assert!(plan
        .add
        .iter()
        .all(|a| a.flags == flag::SIGNAL | flag::SUBFLOW));
    assert_eq!(
        plan.limits,
        Some(Limits {
            subflows: 3,
            add_addr_accepted: 3
        })
    );
    let (mut endpoints, mut limits) = (Vec::new(), DEFAULT);
    let ids = apply(&plan, &mut endpoints, &mut limits);
    let record = record_after(&Record::default(), &plan, &ids, DEFAULT, "paths auto");
    assert_eq!(record.limits_before, Some(DEFAULT));
    assert_eq!(record.endpoints.len(), 3);
    // Idempotent: the second run writes nothing.
    let again = auto(&usable, &endpoints, limits, &record, Roles::Both, true).unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn roles_pick_the_flags() {
    assert_eq!(Roles::SignalOnly.flags(), flag::SIGNAL);
    assert_eq!(Roles::SubflowOnly.flags(), flag::SUBFLOW);
    let usable = usable(&host(), &[]);
    let (endpoints, limits, record) = configured(&usable, "paths auto");
    // Asked again with other flags: each of ours is replaced.
    let plan = auto(
        &usable,
        &endpoints,
        limits,
        &record,
        Roles::SignalOnly,
        true,
    )
    .unwrap();
    assert_eq!(plan.remove.len(), 3);
    assert_eq!(plan.add.len(), 3);
    assert!(plan.add.iter().all(|a| a.flags == flag::SIGNAL));
}

#[test]
fn endpoints_of_others_are_neither_duplicated_nor_removed() {
    let usable = usable(&host(), &[]);
    // NetworkManager's endpoint for eth0's address, with its own flags.
    let theirs = vec![endpoint(7, "192.0.2.2", flag::SUBFLOW | flag::BACKUP)];
    let plan = auto(
        &usable,
        &theirs,
        DEFAULT,
        &Record::default(),
        Roles::Both,
        true,
    )
    .unwrap();
    assert_eq!(plan.add.len(), 2);
    assert!(plan.add.iter().all(|a| a.candidate.interface == "eth1"));
    assert_eq!(plan.foreign.len(), 1);
    assert_eq!(plan.foreign[0].1, 7);
    assert!(plan.remove.is_empty());
    // The limits count theirs too.
    assert_eq!(plan.limits.unwrap().subflows, 3);
    let mut endpoints = theirs.clone();
    let mut limits = DEFAULT;
    let ids = apply(&plan, &mut endpoints, &mut limits);
    let record = record_after(&Record::default(), &plan, &ids, DEFAULT, "paths auto");
    let undo = reset(&record, &endpoints, limits, None);
    assert_eq!(undo.remove.len(), 2);
    assert!(undo.remove.iter().all(|a| a.id != 7));
    assert_eq!(undo.limits, Some(DEFAULT));
}

#[test]
fn an_address_gone_loses_its_endpoint_and_one_added_gets_one() {
    let mut interfaces = host();
    let usable1 = usable(&interfaces, &[]);
    let (mut endpoints, mut limits, record) = configured(&usable1, "pid 9");
    // eth1 goes down; eth2 comes up.
    interfaces[2].up = false;
    interfaces[3].up = true;
    let usable2 = usable(&interfaces, &[]);
    let plan = auto(&usable2, &endpoints, limits, &record, Roles::Both, false).unwrap();
    let removed: Vec<String> = plan.remove.iter().map(|a| a.ip.to_string()).collect();
    assert_eq!(removed, ["198.51.100.2", "2001:db8::2"]);
    assert_eq!(plan.add.len(), 1);
    assert_eq!(plan.add[0].candidate.ip.to_string(), "203.0.113.2");
    // Limits are never lowered while attached.
    assert_eq!(plan.limits, None);
    assert!(plan.limits_kept);
    let ids = apply(&plan, &mut endpoints, &mut limits);
    let record = record_after(&record, &plan, &ids, DEFAULT, "pid 9");
    assert_eq!(record.endpoints.len(), 2);
    assert_eq!(record.limits_before, Some(DEFAULT));
}

#[test]
fn an_endpoint_deleted_by_someone_else_is_dropped_from_the_record_and_added_again() {
    let usable = usable(&host(), &[]);
    let (mut endpoints, limits, record) = configured(&usable, "paths auto");
    let gone = endpoints.remove(0);
    let plan = auto(&usable, &endpoints, limits, &record, Roles::Both, true).unwrap();
    assert_eq!(plan.vanished.len(), 1);
    assert_eq!(plan.vanished[0].id, gone.id);
    assert_eq!(plan.add.len(), 1);
    assert!(plan.remove.is_empty());
    // An id reused by another tool for another address is not ours.
    endpoints.push(endpoint(gone.id, "203.0.113.9", flag::SIGNAL));
    let undo = reset(&record, &endpoints, limits, None);
    assert!(undo.remove.iter().all(|a| a.id != gone.id));
    assert_eq!(undo.vanished.len(), 1);
}

#[test]
fn more_addresses_than_the_kernel_uses_are_refused_or_capped() {
    let addresses: Vec<String> = (1..=10).map(|i| format!("192.0.2.{i}")).collect();
    let ips: Vec<(&str, u8)> = addresses.iter().map(|a| (a.as_str(), 0)).collect();
    let interfaces = vec![iface(2, "eth0", true, &ips)];
    let usable = usable(&interfaces, &[]);
    let refused = auto(&usable, &[], DEFAULT, &Record::default(), Roles::Both, true);
    assert_eq!(refused.unwrap_err().usable.len(), 10);
    let capped = auto(
        &usable,
        &[],
        DEFAULT,
        &Record::default(),
        Roles::Both,
        false,
    )
    .unwrap();
    assert_eq!(capped.add.len(), KERNEL_MAX as usize);
    assert_eq!(
        capped.limits,
        Some(Limits {
            subflows: KERNEL_MAX,
            add_addr_accepted: KERNEL_MAX
        })
    );
}

#[test]
fn reset_restores_the_limits_only_if_they_are_still_mptcpifys() {
    let usable = usable(&host(), &[]);
    let (endpoints, limits, record) = configured(&usable, "paths auto");
    let undo = reset(&record, &endpoints, limits, None);
    assert_eq!(undo.limits, Some(DEFAULT));
    assert_eq!(undo.remaining, Record::default());
    let changed = Limits {
        subflows: 5,
        add_addr_accepted: 1,
    };
    let undo = reset(&record, &endpoints, changed, None);
    assert_eq!(undo.limits, None);
    assert_eq!(undo.limits_changed_since, Some(changed));
    assert_eq!(undo.remove.len(), 3);
}

#[test]
fn reset_of_one_owner_keeps_the_others_and_the_limits() {
    let usable = usable(&host(), &[]);
    let (mut endpoints, mut limits, first) = configured(&usable[..1], "paths auto");
    let plan = auto(&usable, &endpoints, limits, &first, Roles::Both, true).unwrap();
    let before = limits;
    let ids = apply(&plan, &mut endpoints, &mut limits);
    let both = record_after(&first, &plan, &ids, before, "pid 42");
    assert_eq!(both.limits_before, Some(DEFAULT));
    let undo = reset(&both, &endpoints, limits, Some("pid 42"));
    assert_eq!(undo.remove.len(), 2);
    assert_eq!(undo.limits, None);
    assert_eq!(undo.remaining.endpoints.len(), 1);
    assert_eq!(undo.remaining.limits_before, Some(DEFAULT));
    let undo = reset(&undo.remaining, &endpoints, limits, None);
    assert_eq!(undo.remove.len(), 1);
    assert_eq!(undo.limits, Some(DEFAULT));
}

#[test]
fn the_verdict_says_why_there_is_one_path() {
    let usable = usable(&host(), &[]);
    let none = verdict(PmType::Kernel, &usable, &[], DEFAULT);
    assert_eq!(none.paths, 1);
    assert!(none.reasons[0].starts_with("no endpoints"), "{none:?}");
    assert!(none.reasons.iter().any(|r| r.contains("192.0.2.2 (eth0)")));
    let zero = Limits {
        subflows: 0,
        add_addr_accepted: 0,
    };
    let eps = vec![
        endpoint(1, "192.0.2.2", flag::SIGNAL | flag::SUBFLOW),
        endpoint(2, "198.51.100.2", flag::SIGNAL | flag::SUBFLOW),
    ];
    let capped = verdict(PmType::Kernel, &usable, &eps, zero);
    assert_eq!(capped.paths, 1);
    assert!(capped
        .reasons
        .iter()
        .any(|r| r.contains("subflows limit is 0")));
    let full = Limits {
        subflows: 3,
        add_addr_accepted: 3,
    };
    let good = verdict(PmType::Kernel, &usable[..2], &eps, full);
    assert_eq!(good.paths, 4);
    assert_eq!(good.extra_from_here, 2);
    assert_eq!(good.announced, 2);
    assert!(good.reasons.is_empty(), "{good:?}");
    let user = verdict(PmType::Userspace, &usable, &eps, full);
    assert_eq!(user.paths, 1);
    assert!(user.reasons[0].contains("userspace"));
}

#[test]
fn pm_type_and_flag_names() {
    assert_eq!(PmType::from_sysctl("0\n"), PmType::Kernel);
    assert_eq!(PmType::from_sysctl("1"), PmType::Userspace);
    assert_eq!(PmType::from_sysctl("kernel"), PmType::Kernel);
    assert_eq!(PmType::from_sysctl("7"), PmType::Other(7));
    assert_eq!(
        flag::names(flag::SIGNAL | flag::SUBFLOW),
        ["signal", "subflow"]
    );
    assert_eq!(flag::names(flag::BACKUP | 0x100), ["backup", "0x100"]);
}

#[test]
fn the_record_reads_back_what_was_written() {
    let usable = usable(&host(), &[]);
    let plan = auto(&usable, &[], DEFAULT, &Record::default(), Roles::Both, true).unwrap();
    let record = record_after(&Record::default(), &plan, &[1, 2, 3], DEFAULT, "pin web");
    let text = serde_json::to_string_pretty(&record).unwrap();
    let back: Record = serde_json::from_str(&text).unwrap();
    assert_eq!(back, record);
}
