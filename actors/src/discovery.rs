//! Discovery: owns the node's mDNS/DNS-SD presence on the LAN (its `_peerchat._tcp.local.`
//! announcement and the browse for others, through the `mdns-sd` daemon's thread) and the set
//! of nearby peers. It tells the Registry the whole list (`NearbyPeers`) whenever it changes;
//! `Node` starts it and retires it on quit, which sends the goodbye packets. Supervised: a
//! failure (a panic in a handler, an injected fault) restarts it, announcing and browsing
//! again through the same daemon; it reports to the NodeSupervisor like the other children.

use std::net::IpAddr;
use std::time::Duration;

use actix::prelude::*;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};

use crate::child::ChildName;
use crate::config::LocalIdentity;
use crate::faults::Inject;
use crate::guarded_handler;
use crate::nearby::{announced_identity, Announcement, NearbySet, Sighting, SERVICE_TYPE};
use crate::registry::NearbyPeers;
use crate::supervision::{guarded, suffer, Retire, SupervisedChild, SupervisorLink};
use crate::trace::{tell_recipient, Role, Traced};

/// How long quitting waits for the daemon to send the goodbyes.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);

/// The Discovery actor (see the module docs).
pub struct Discovery {
    daemon: ServiceDaemon,
    /// What is announced, registered again after a restart.
    info: ServiceInfo,
    /// The full name of our announcement, until it is withdrawn.
    announced: Option<String>,
    nearby: NearbySet,
    registry: Recipient<NearbyPeers>,
    /// The first browse, taken by the first `started`; a restart browses anew.
    browse: Option<mdns_sd::Receiver<ServiceEvent>>,
    supervisor: SupervisorLink,
    failure: Option<String>,
    incarnation: u32,
    /// Withdrawn for good (quit, or the node gave up): a restart announces nothing.
    retired: bool,
}

/// Whether a node bound to `bind` takes part in discovery: not on loopback, where only this
/// host could reach it and announcing it on the LAN would be a lie.
pub fn wanted(bind: IpAddr) -> bool {
    !bind.is_loopback()
}

impl Discovery {
    /// Starts the mDNS daemon, announces `me` on the interfaces it listens on and browses for
    /// other nodes; the actor is started under actix's `Supervisor`, reporting to
    /// `supervisor`. An error (no multicast here, say) leaves the node without discovery.
    pub fn start(
        me: &LocalIdentity,
        registry: Recipient<NearbyPeers>,
        supervisor: SupervisorLink,
    ) -> Result<Addr<Discovery>, mdns_sd::Error> {
        let daemon = ServiceDaemon::new()?;
        // Only where the node listens: all interfaces but loopback for 0.0.0.0 / ::, or the
        // one interface it is bound to.
        if me.bind.is_unspecified() {
            daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        } else {
            daemon.disable_interface(IfKind::All)?;
            daemon.enable_interface(IfKind::Addr(me.bind))?;
        }
        let announcement = Announcement::of(me);
        let txt = announcement.txt();
        let info = if me.bind.is_unspecified() {
            // The daemon fills in each interface's own addresses.
            ServiceInfo::new(
                SERVICE_TYPE,
                &announcement.instance(),
                &announcement.host(),
                "",
                announcement.port,
                &txt[..],
            )?
            .enable_addr_auto()
        } else {
            ServiceInfo::new(
                SERVICE_TYPE,
                &announcement.instance(),
                &announcement.host(),
                me.bind,
                announcement.port,
                &txt[..],
            )?
        };
        let fullname = info.get_fullname().to_string();
        daemon.register(info.clone())?;
        let browse = daemon.browse(SERVICE_TYPE)?;
        let discovery = Discovery {
            daemon,
            info,
            announced: Some(fullname),
            nearby: NearbySet::new(&announced_identity(me)),
            registry,
            browse: Some(browse),
            supervisor,
            failure: None,
            incarnation: 0,
            retired: false,
        };
        Ok(Supervisor::start(move |_| discovery))
    }

    /// After a restart: the browse went with the old incarnation's stream. The daemon still
    /// answers for our announcement; registering it again announces it at once, in case a
    /// failure came between. Errors leave the node without discovery, not failing again.
    fn resume(&mut self, ctx: &mut Context<Self>) {
        if let Err(err) = self.daemon.register(self.info.clone()) {
            tracing::warn!("mDNS: cannot announce again after a restart: {err}");
        }
        match self.daemon.browse(SERVICE_TYPE) {
            Ok(browse) => {
                ctx.add_stream(browse.into_stream());
            }
            Err(err) => tracing::warn!("mDNS: cannot browse again after a restart: {err}"),
        }
        // `ChildRestarted`: it serves again (without a browse, as a node without discovery).
        self.report_restart();
    }

    fn on_event(&mut self, event: ServiceEvent) {
        let changed = match event {
            ServiceEvent::ServiceResolved(service) => {
                let sighting = Sighting {
                    instance: service.fullname.clone(),
                    port: service.port,
                    ips: service.addresses.iter().map(|ip| ip.to_ip_addr()).collect(),
                    txt: service
                        .txt_properties
                        .iter()
                        .map(|p| (p.key().to_string(), p.val_str().to_string()))
                        .collect(),
                };
                match self.nearby.sighted(&sighting) {
                    Ok(changed) => changed,
                    Err(why) => {
                        tracing::debug!("mDNS: {} ignored: {why}", sighting.instance);
                        false
                    }
                }
            }
            ServiceEvent::ServiceRemoved(_, fullname) => self.nearby.gone(&fullname),
            _ => false,
        };
        if changed {
            let nearby = NearbyPeers(self.nearby.peers());
            tell_recipient(Role::Discovery, Role::Registry, &self.registry, nearby);
        }
    }

    /// Withdraws the announcement (goodbye packets, so that others drop this node at once)
    /// and stops the daemon; returns when the goodbyes are sent, or after `GOODBYE_WAIT`.
    fn withdraw(&mut self) -> impl std::future::Future<Output = ()> + 'static {
        let unregistered = self
            .announced
            .take()
            .and_then(|fullname| self.daemon.unregister(&fullname).ok());
        let daemon = self.daemon.clone();
        async move {
            if let Some(status) = unregistered {
                let _ = actix_rt::time::timeout(GOODBYE_WAIT, status.recv_async()).await;
            }
            if let Ok(stopped) = daemon.shutdown() {
                let _ = actix_rt::time::timeout(GOODBYE_WAIT, stopped.recv_async()).await;
            }
        }
    }
}

impl Actor for Discovery {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.retired {
            return;
        }
        match self.browse.take() {
            Some(browse) => {
                ctx.add_stream(browse.into_stream());
            }
            None => self.resume(ctx),
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // Stopped neither by a failure (a restart follows) nor by a Retire: the system
        // ends. Still say goodbye, without waiting.
        if self.failure.is_none() && !self.retired {
            if let Some(fullname) = self.announced.take() {
                let _ = self.daemon.unregister(&fullname);
                let _ = self.daemon.shutdown();
            }
        }
    }
}

impl Supervised for Discovery {
    fn restarting(&mut self, _: &mut Context<Self>) {
        self.incarnation += 1;
        // Retiring stops it on purpose: not a failure to report (`ChildFailed`).
        if !self.retired {
            self.report_failure();
        }
    }
}

impl Traced for Discovery {
    const ROLE: Role = Role::Discovery;
}

impl SupervisedChild for Discovery {
    const NAME: ChildName = ChildName::Discovery;

    fn failure(&mut self) -> &mut Option<String> {
        &mut self.failure
    }

    fn supervisor(&self) -> &SupervisorLink {
        &self.supervisor
    }
}

impl StreamHandler<ServiceEvent> for Discovery {
    fn handle(&mut self, event: ServiceEvent, ctx: &mut Context<Self>) {
        guarded(self, ctx, || (), |act, _| act.on_event(event));
    }

    fn finished(&mut self, _: &mut Context<Self>) {
        // The daemon is gone (or a restart replaced the stream); the node goes on.
    }
}

guarded_handler!(Discovery, Inject, |act, msg, ctx| suffer(act, ctx, msg.0));

/// Quitting: stop announcing and browsing, for good. Answered once the goodbyes are out.
impl Handler<Retire> for Discovery {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) -> Self::Result {
        guarded(
            self,
            ctx,
            || -> ResponseFuture<()> { Box::pin(async {}) },
            |act, ctx| -> ResponseFuture<()> {
                act.retired = true;
                let withdrawn = act.withdraw();
                ctx.stop();
                Box::pin(withdrawn)
            },
        )
    }
}
