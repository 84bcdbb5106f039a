//! The in-kernel MPTCP path manager over generic netlink (family
//! `mptcp_pm`, include/uapi/linux/mptcp_pm.h): the endpoints and limits of
//! the caller's network namespace, as `ip mptcp endpoint|limits` reads and
//! writes them.
//!
//! Reads go through the `mptcp-pm` crate. It only reads (its command enum
//! has `GET_ADDR` and `GET_LIMITS`), so the three writes mptcpify needs
//! (`ADD_ADDR`, `DEL_ADDR`, `SET_LIMITS`) are a message type of ours
//! below, [`Write`], on netlink-packet-generic, sent on the same
//! connection. It knows nothing of mptcpify and could be offered upstream
//! as is.

use std::net::IpAddr;

use futures::{StreamExt, TryStreamExt};
use mptcp_pm::{
    MptcpPathManagerAddressAttr, MptcpPathManagerAttr, MptcpPathManagerHandle,
    MptcpPathManagerLimitsAttr,
};
use mptcpify_core::paths::{Endpoint, Limits};
use netlink_packet_core::{
    DecodeError, Emitable, NetlinkMessage, NetlinkPayload, Nla, ParseableParametrized, NLM_F_ACK,
    NLM_F_REQUEST,
};
use netlink_packet_generic::{GenlFamily, GenlHeader, GenlMessage};

/// Commands (`enum mptcp_pm_command`).
const CMD_ADD_ADDR: u8 = 1;
const CMD_DEL_ADDR: u8 = 2;
const CMD_SET_LIMITS: u8 = 5;

/// Top-level attributes (`enum mptcp_pm_attrs`).
const ATTR_ADDR: u16 = 1;
const ATTR_RCV_ADD_ADDRS: u16 = 2;
const ATTR_SUBFLOWS: u16 = 3;

/// Attributes nested in `ATTR_ADDR` (`enum mptcp_pm_addr_attrs`).
const ADDR_ATTR_FAMILY: u16 = 1;
const ADDR_ATTR_ID: u16 = 2;
const ADDR_ATTR_ADDR4: u16 = 3;
const ADDR_ATTR_ADDR6: u16 = 4;
const ADDR_ATTR_FLAGS: u16 = 6;
const ADDR_ATTR_IF_IDX: u16 = 7;

/// An open connection to the family.
pub struct PathManager {
    handle: MptcpPathManagerHandle,
    connection: tokio::task::JoinHandle<()>,
}

impl Drop for PathManager {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// A refused or failed request: the kernel's errno where it gave one.
#[derive(Debug)]
pub struct Error {
    pub what: String,
    pub errno: Option<i32>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errno {
            Some(errno) => write!(
                f,
                "{}: {}",
                self.what,
                std::io::Error::from_raw_os_error(errno)
            ),
            None => f.write_str(&self.what),
        }
    }
}

impl Error {
    /// `what` first, then what was already said.
    fn context(self, what: String) -> Error {
        Error {
            what: if self.what.is_empty() {
                what
            } else {
                format!("{what}: {}", self.what)
            },
            errno: self.errno,
        }
    }
}

fn error(what: impl Into<String>) -> Error {
    Error {
        what: what.into(),
        errno: None,
    }
}

impl PathManager {
    /// Opens a connection (in the caller's network namespace); needs a
    /// tokio runtime.
    pub fn open() -> Result<PathManager, Error> {
        let (connection, handle, _) = mptcp_pm::new_connection()
            .map_err(|e| error(format!("opening a generic netlink socket: {e}")))?;
        Ok(PathManager {
            handle,
            connection: tokio::spawn(connection),
        })
    }

    /// `ip mptcp limits show`.
    pub async fn limits(&self) -> Result<Limits, Error> {
        let mut limits = Limits {
            subflows: 0,
            add_addr_accepted: 0,
        };
        let mut replies = self.handle.limits().get().execute().await;
        while let Some(reply) = replies
            .try_next()
            .await
            .map_err(|e| error(format!("reading the limits: {e}")))?
        {
            for attr in reply.payload.nlas {
                match attr {
                    MptcpPathManagerAttr::Limits(MptcpPathManagerLimitsAttr::Subflows(n)) => {
                        limits.subflows = n;
                    }
                    MptcpPathManagerAttr::Limits(MptcpPathManagerLimitsAttr::RcvAddAddrs(n)) => {
                        limits.add_addr_accepted = n;
                    }
                    _ => {}
                }
            }
        }
        Ok(limits)
    }

    /// `ip mptcp endpoint show`.
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        let mut endpoints = Vec::new();
        let mut replies = self.handle.address().get().execute().await;
        while let Some(reply) = replies
            .try_next()
            .await
            .map_err(|e| error(format!("reading the endpoints: {e}")))?
        {
            endpoints.push(endpoint(&reply.payload.nlas));
        }
        endpoints.sort_by_key(|e| e.id);
        Ok(endpoints)
    }

    /// `ip mptcp endpoint add IP dev IF FLAGS`: the kernel picks the id
    /// (read it back with [`Self::endpoints`]).
    pub async fn add(&self, ip: IpAddr, ifindex: u32, flags: u32) -> Result<(), Error> {
        let mut address = address_attrs(ip);
        address.push(AddrAttr::Flags(flags));
        address.push(AddrAttr::IfIndex(ifindex as i32));
        self.write(CMD_ADD_ADDR, vec![Attr::Address(address)])
            .await
            .map_err(|e| e.context(format!("adding the endpoint {ip}")))
    }

    /// `ip mptcp endpoint delete id ID`, checked against the address: the
    /// kernel deletes by id (`mptcp_pm_nl_del_addr_doit`).
    pub async fn delete(&self, id: u8, ip: IpAddr) -> Result<(), Error> {
        let mut address = address_attrs(ip);
        address.push(AddrAttr::Id(id));
        self.write(CMD_DEL_ADDR, vec![Attr::Address(address)])
            .await
            .map_err(|e| e.context(format!("deleting the endpoint id {id} ({ip})")))
    }

    /// `ip mptcp limits set subflows N add_addr_accepted M`.
    pub async fn set_limits(&self, limits: Limits) -> Result<(), Error> {
        self.write(
            CMD_SET_LIMITS,
            vec![
                Attr::RcvAddAddrs(limits.add_addr_accepted),
                Attr::Subflows(limits.subflows),
            ],
        )
        .await
        .map_err(|e| {
            e.context(format!(
                "setting the limits to subflows {} add_addr_accepted {}",
                limits.subflows, limits.add_addr_accepted
            ))
        })
    }

    /// Sends one write and waits for the kernel's answer.
    async fn write(&self, cmd: u8, attrs: Vec<Attr>) -> Result<(), Error> {
        let mut message = NetlinkMessage::from(GenlMessage::from_payload(Write { cmd, attrs }));
        message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
        message.finalize();
        let mut genl = self.handle.handle.clone();
        let mut replies = genl
            .request(message)
            .await
            .map_err(|e| error(format!("sending: {e}")))?;
        // netlink-proto ends the stream at the kernel's ack; a refusal comes
        // before that as an error message.
        while let Some(reply) = replies.next().await {
            let reply = reply.map_err(|e| error(format!("decoding the answer: {e}")))?;
            if let NetlinkPayload::Error(e) = reply.payload {
                if let Some(code) = e.code {
                    return Err(Error {
                        what: String::new(),
                        errno: Some(-code.get()),
                    });
                }
            }
        }
        Ok(())
    }
}

fn address_attrs(ip: IpAddr) -> Vec<AddrAttr> {
    match ip {
        IpAddr::V4(v4) => vec![
            AddrAttr::Family(libc::AF_INET as u16),
            AddrAttr::Addr(v4.octets().to_vec()),
        ],
        IpAddr::V6(v6) => vec![
            AddrAttr::Family(libc::AF_INET6 as u16),
            AddrAttr::Addr(v6.octets().to_vec()),
        ],
    }
}

/// An endpoint from `mptcp-pm`'s attributes.
fn endpoint(attrs: &[MptcpPathManagerAttr]) -> Endpoint {
    let mut endpoint = Endpoint {
        id: 0,
        ip: None,
        port: 0,
        flags: 0,
        ifindex: 0,
    };
    for attr in attrs {
        let MptcpPathManagerAttr::Address(attr) = attr else {
            continue;
        };
        match attr {
            MptcpPathManagerAddressAttr::Id(id) => endpoint.id = *id,
            MptcpPathManagerAddressAttr::Addr4(a) => endpoint.ip = Some(IpAddr::V4(*a)),
            MptcpPathManagerAddressAttr::Addr6(a) => endpoint.ip = Some(IpAddr::V6(*a)),
            MptcpPathManagerAddressAttr::Port(p) => endpoint.port = *p,
            MptcpPathManagerAddressAttr::Flags(flags) => {
                endpoint.flags = flags.iter().fold(0, |all, f| all | u32::from(f));
            }
            MptcpPathManagerAddressAttr::IfIndex(i) => endpoint.ifindex = *i,
            _ => {}
        }
    }
    endpoint
}

/// A write request of the family (the kernel answers it with an ack).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    cmd: u8,
    attrs: Vec<Attr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Attr {
    Address(Vec<AddrAttr>),
    RcvAddAddrs(u32),
    Subflows(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum AddrAttr {
    Family(u16),
    Id(u8),
    /// 4 or 16 bytes, in network order (`nla_get_in_addr`,
    /// `nla_get_in6_addr`).
    Addr(Vec<u8>),
    Flags(u32),
    IfIndex(i32),
}

impl Nla for AddrAttr {
    fn value_len(&self) -> usize {
        match self {
            AddrAttr::Family(_) => 2,
            AddrAttr::Id(_) => 1,
            AddrAttr::Addr(bytes) => bytes.len(),
            AddrAttr::Flags(_) | AddrAttr::IfIndex(_) => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            AddrAttr::Family(_) => ADDR_ATTR_FAMILY,
            AddrAttr::Id(_) => ADDR_ATTR_ID,
            AddrAttr::Addr(bytes) if bytes.len() == 4 => ADDR_ATTR_ADDR4,
            AddrAttr::Addr(_) => ADDR_ATTR_ADDR6,
            AddrAttr::Flags(_) => ADDR_ATTR_FLAGS,
            AddrAttr::IfIndex(_) => ADDR_ATTR_IF_IDX,
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            AddrAttr::Family(family) => buffer[..2].copy_from_slice(&family.to_ne_bytes()),
            AddrAttr::Id(id) => buffer[0] = *id,
            AddrAttr::Addr(bytes) => buffer[..bytes.len()].copy_from_slice(bytes),
            AddrAttr::Flags(flags) => buffer[..4].copy_from_slice(&flags.to_ne_bytes()),
            AddrAttr::IfIndex(index) => buffer[..4].copy_from_slice(&index.to_ne_bytes()),
        }
    }
}

impl Nla for Attr {
    fn value_len(&self) -> usize {
        match self {
            Attr::Address(nested) => nested.as_slice().buffer_len(),
            Attr::RcvAddAddrs(_) | Attr::Subflows(_) => 4,
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Attr::Address(_) => ATTR_ADDR,
            Attr::RcvAddAddrs(_) => ATTR_RCV_ADD_ADDRS,
            Attr::Subflows(_) => ATTR_SUBFLOWS,
        }
    }

    /// `NLA_F_NESTED` on the address: the family's policy is validated
    /// strictly from 6.7 (net/mptcp/mptcp_pm_gen.c), which requires it.
    fn is_nested(&self) -> bool {
        matches!(self, Attr::Address(_))
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Attr::Address(nested) => nested.as_slice().emit(buffer),
            Attr::RcvAddAddrs(n) | Attr::Subflows(n) => {
                buffer[..4].copy_from_slice(&n.to_ne_bytes())
            }
        }
    }
}

impl GenlFamily for Write {
    fn family_name() -> &'static str {
        "mptcp_pm"
    }

    fn version(&self) -> u8 {
        1
    }

    fn command(&self) -> u8 {
        self.cmd
    }
}

impl Emitable for Write {
    fn buffer_len(&self) -> usize {
        self.attrs.as_slice().buffer_len()
    }

    fn emit(&self, buffer: &mut [u8]) {
        self.attrs.as_slice().emit(buffer)
    }
}

/// The kernel answers writes with an ack only; an unexpected payload is
/// kept as its command, without attributes.
impl ParseableParametrized<[u8], GenlHeader> for Write {
    fn parse_with_param(_: &[u8], header: GenlHeader) -> Result<Self, DecodeError> {
        Ok(Write {
            cmd: header.cmd,
            attrs: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ip mptcp endpoint add 192.0.2.2 dev #3 signal subflow` after the
    /// generic netlink header, laid out as the kernel parses it
    /// (`mptcp_pm_parse_entry`): one nested attribute, with the nested flag,
    /// holding the family, the address in network order, flags and device.
    #[test]
    fn an_endpoint_is_encoded_as_iproute2_encodes_it() {
        let mut attrs = address_attrs("192.0.2.2".parse().unwrap());
        attrs.push(AddrAttr::Flags(3));
        attrs.push(AddrAttr::IfIndex(3));
        let write = Write {
            cmd: CMD_ADD_ADDR,
            attrs: vec![Attr::Address(attrs)],
        };
        let mut bytes = vec![0; write.buffer_len()];
        write.emit(&mut bytes);
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[36u8, 0, 1, 0x80][..],  // len 36, ATTR_ADDR | NLA_F_NESTED
            &[6, 0, 1, 0, 2, 0, 0, 0],   // family AF_INET, padded
            &[8, 0, 3, 0, 192, 0, 2, 2], // addr4, network order
            &[8, 0, 6, 0], &3u32.to_ne_bytes(), // flags
            &[8, 0, 7, 0], &3i32.to_ne_bytes(), // ifindex
        ]
        .concat();
        assert_eq!(bytes, expected);
    }

    #[test]
    fn limits_are_two_u32() {
        let write = Write {
            cmd: CMD_SET_LIMITS,
            attrs: vec![Attr::RcvAddAddrs(2), Attr::Subflows(8)],
        };
        let mut bytes = vec![0; write.buffer_len()];
        write.emit(&mut bytes);
        let expected: Vec<u8> = [
            &[8u8, 0, 2, 0][..],
            &2u32.to_ne_bytes(),
            &[8, 0, 3, 0],
            &8u32.to_ne_bytes(),
        ]
        .concat();
        assert_eq!(bytes, expected);
    }
}
