//! A kernel that cannot run mptcpify must be told apart, with its own exit
//! code and fix. Which refusal to expect is given by the runner, which knows
//! the kernel: `MPTCPIFY_EXPECT_REFUSAL=too-old` (no update_socket_protocol,
//! e.g. Debian 6.1) or `trampolines` (a kernel that refuses fmod_ret, like our
//! build hosts' own). Without it the test fails rather than guess.

use mptcpify_tests::process::run;

#[test]
fn refusal_names_cause_and_fix() {
    let expect = std::env::var("MPTCPIFY_EXPECT_REFUSAL")
        .expect("set MPTCPIFY_EXPECT_REFUSAL=too-old|trampolines for this kernel");
    let (status, out) = run(&["--comm", "iperf3"]);
    let (code, needles): (i32, &[&str]) = match expect.as_str() {
        "too-old" => (
            5,
            &[
                "has no update_socket_protocol hook",
                "Linux 6.6",
                "mptcpize run CMD",
            ],
        ),
        "trampolines" => (
            6,
            &["refused to load the fmod_ret program", "EPERM", "lockdown"],
        ),
        other => panic!("unknown MPTCPIFY_EXPECT_REFUSAL={other}"),
    };
    assert_eq!(status.code(), Some(code), "{out}");
    for needle in needles {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}
