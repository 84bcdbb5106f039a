//! Where systemd puts a slice's cgroup, for `--unit` (a unit not running
//! yet goes where its `Slice=` says) and for Kubernetes pods (the kubelet's
//! systemd cgroup driver names a pod by its slice).

/// Where systemd puts a slice's cgroup: `a-b.slice` is
/// `/a.slice/a-b.slice` (systemd.slice(5)); the root slice `-.slice` is `/`
/// (returned as ""). An empty slice is taken to be `system.slice`.
pub fn slice_path(slice: &str) -> String {
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let Some(stem) = slice.strip_suffix(".slice").filter(|s| *s != "-") else {
        return String::new();
    };
    let parts: Vec<&str> = stem.split('-').collect();
    (1..=parts.len())
        .map(|n| format!("/{}.slice", parts[..n].join("-")))
        .collect()
}
