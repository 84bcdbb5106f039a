//! Interfaces and their addresses over rtnetlink (`ip link`, `ip addr`),
//! and a watch on their changes (`ip monitor link address`), in the
//! caller's network namespace, through the rtnetlink crate.

use std::net::IpAddr;

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use futures::TryStreamExt;
use mptcpify_core::paths::{Address, Interface};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::MulticastGroup;

/// Every interface with its addresses, in index order.
pub async fn interfaces() -> std::io::Result<Vec<Interface>> {
    let (connection, handle, _) = rtnetlink::new_connection()?;
    let connection = tokio::spawn(connection);
    let result = async {
        let mut interfaces = Vec::new();
        let mut links = handle.link().get().execute();
        while let Some(link) = links.try_next().await.map_err(other)? {
            let flags = link.header.flags;
            interfaces.push(Interface {
                index: link.header.index,
                name: link
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::IfName(name) => Some(name.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
                up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
                loopback: flags.contains(LinkFlags::Loopback),
                addresses: Vec::new(),
            });
        }
        let mut addresses = handle.address().get().execute();
        while let Some(message) = addresses.try_next().await.map_err(other)? {
            let index = message.header.index;
            if let (Some(interface), Some(address)) = (
                interfaces.iter_mut().find(|i| i.index == index),
                address(&message),
            ) {
                interface.addresses.push(address);
            }
        }
        interfaces.sort_by_key(|i| i.index);
        Ok(interfaces)
    }
    .await;
    connection.abort();
    result
}

fn other(e: rtnetlink::Error) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn address(message: &AddressMessage) -> Option<Address> {
    // For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS the
    // peer's on a point-to-point link (include/uapi/linux/if_addr.h).
    let local = message.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    let ip: IpAddr = local.or_else(|| {
        message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(ip) => Some(*ip),
            _ => None,
        })
    })?;
    let pending = AddressHeaderFlags::Tentative | AddressHeaderFlags::Dadfailed;
    let extended = message.attributes.iter().any(|a| match a {
        AddressAttribute::Flags(flags) => flags.bits() & u32::from(pending.bits()) != 0,
        _ => false,
    });
    Some(Address {
        ip,
        scope: message.header.scope.into(),
        tentative: message.header.flags.intersects(pending) || extended,
    })
}

/// A subscription to link and address changes; each message received
/// means "read again". Subscribed before the first read, so no change
/// between the read and the subscription is missed.
pub struct Watch {
    changes: UnboundedReceiver<(
        netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage>,
        netlink_sys::SocketAddr,
    )>,
    connection: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub fn subscribe() -> std::io::Result<Watch> {
        let (connection, _handle, changes) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        Ok(Watch {
            changes,
            connection: tokio::spawn(connection),
        })
    }

    /// Waits for a change. `None`: the socket closed.
    pub async fn changed(&mut self) -> Option<()> {
        self.changes.next().await.map(|_| ())
    }

    /// Takes the changes already queued: a burst (a link going down drops
    /// each of its addresses) is read once. Returns how many.
    pub fn drain(&mut self) -> usize {
        let mut count = 0;
        while self.changes.try_recv().is_ok() {
            count += 1;
        }
        count
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.connection.abort();
    }
}
