//! Per-room ordering of message events on one node, in front of every broker: publication order
//! can differ from seq order when several nodes commit to one room and publish after their
//! commits, and a node only delivers a room's messages once it knows where its sequence stands.
//!
//! **Invariant:** every seq below a published seq is already committed (PostgreSQL assigns seqs
//! under the room's row lock and a node publishes only after its commit). So an event that
//! arrives ahead of a missing seq is parked briefly, and if the missing one does not arrive by
//! itself, it is read from the store (a "fill"). Local subscribers therefore receive each room's
//! messages in seq order, each once.
//!
//! The invariant says what a read sees only for events that arrived *before* the read began:
//! an event parked while a fill's read is under way may stand behind a seq committed after that
//! read's snapshot. So a fill skips a gap the store did not close only below an event that was
//! parked before its read began (each parked event carries its arrival number); a gap below a
//! later arrival gets another fill.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use switchboard_protocol::ws::Message;
use switchboard_protocol::Seq;

use super::registry::Registry;
use super::Event;

/// An event waiting for the seqs before it, with the room's arrival count when it was parked.
struct Parked {
    ev: Arc<Event>,
    arrival: u64,
}

/// Ordering state of one room.
enum RoomOrder {
    /// The node's subscription is not confirmed yet: everything waits.
    Initializing { parked: BTreeMap<Seq, Parked> },
    /// Delivered every seq up to `last`; `parked` holds later ones waiting for a gap to close.
    Ready {
        last: Seq,
        parked: BTreeMap<Seq, Parked>,
        fill_scheduled: bool,
        /// Events parked since the room became ready (numbers their `arrival`).
        arrivals: u64,
    },
}

/// Where a fill reads from, and when it began (see [`Sequencer::fill_from`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FillStart {
    /// The seq after which to read.
    pub after: Seq,
    /// The room's arrival count when the fill began.
    arrivals: u64,
}

/// What the caller must do after offering an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    Nothing,
    /// A gap opened: schedule a fill for the room (once).
    ScheduleFill,
}

/// The node's per-room sequencers. Events are delivered into the registry under the lock, so
/// that a room's deliveries happen in the order decided here.
pub struct Sequencer {
    rooms: Mutex<HashMap<Arc<str>, RoomOrder>>,
}

impl Sequencer {
    pub fn new() -> Self {
        Self {
            rooms: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, RoomOrder>> {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts tracking a room (events are parked until [`init`](Self::init)).
    pub fn track(&self, room: &Arc<str>) {
        self.lock()
            .entry(room.clone())
            .or_insert(RoomOrder::Initializing {
                parked: BTreeMap::new(),
            });
    }

    /// Stops tracking a room (no local subscriber left).
    pub fn untrack(&self, room: &str) {
        self.lock().remove(room);
    }

    /// The node's subscription is confirmed and the store says the room's last seq is `last`.
    /// Events parked meanwhile at or below it are dropped (subscribers read those from the
    /// store), later ones are delivered in order.
    pub fn init(&self, room: &str, last: Seq, registry: &Registry) -> Next {
        let mut rooms = self.lock();
        let Some(order) = rooms.get_mut(room) else {
            return Next::Nothing;
        };
        let parked = match order {
            RoomOrder::Initializing { parked } => std::mem::take(parked),
            RoomOrder::Ready { .. } => return Next::Nothing,
        };
        *order = RoomOrder::Ready {
            last,
            parked,
            fill_scheduled: false,
            arrivals: 0,
        };
        Self::drain(order, registry)
    }

    /// Whether the room is tracked and ready.
    pub fn is_ready(&self, room: &str) -> bool {
        matches!(self.lock().get(room), Some(RoomOrder::Ready { .. }))
    }

    /// Offers an event. Events without a seq are delivered at once.
    pub fn offer(&self, ev: Arc<Event>, registry: &Registry) -> Next {
        let Some(seq) = ev.seq() else {
            registry.deliver(&ev);
            return Next::Nothing;
        };
        let mut rooms = self.lock();
        match rooms.get_mut(&*ev.room) {
            None => Next::Nothing,
            Some(RoomOrder::Initializing { parked }) => {
                parked.insert(seq, Parked { ev, arrival: 0 });
                Next::Nothing
            }
            Some(order @ RoomOrder::Ready { .. }) => {
                let RoomOrder::Ready {
                    last,
                    parked,
                    arrivals,
                    ..
                } = order
                else {
                    unreachable!()
                };
                if seq <= *last {
                    return Next::Nothing;
                }
                *arrivals += 1;
                let arrival = *arrivals;
                parked.insert(seq, Parked { ev, arrival });
                Self::drain(order, registry)
            }
        }
    }

    /// Delivers parked events that continue the sequence; reports whether a gap remains.
    fn drain(order: &mut RoomOrder, registry: &Registry) -> Next {
        let RoomOrder::Ready {
            last,
            parked,
            fill_scheduled,
            ..
        } = order
        else {
            return Next::Nothing;
        };
        while let Some(entry) = parked.first_entry() {
            let seq = *entry.key();
            if seq <= *last {
                entry.remove();
            } else if seq == *last + 1 {
                let parked = entry.remove();
                registry.deliver(&parked.ev);
                *last = seq;
            } else {
                break;
            }
        }
        if parked.is_empty() || *fill_scheduled {
            Next::Nothing
        } else {
            *fill_scheduled = true;
            Next::ScheduleFill
        }
    }

    /// Where a fill must read from, if the room is ready: after the last delivered seq. Call
    /// it before the read.
    pub fn fill_from(&self, room: &str) -> Option<FillStart> {
        match self.lock().get(room) {
            Some(RoomOrder::Ready { last, arrivals, .. }) => Some(FillStart {
                after: *last,
                arrivals: *arrivals,
            }),
            _ => None,
        }
    }

    /// Applies messages read from the store after [`fill_from`](Self::fill_from) gave `start`:
    /// delivers the missing ones in order, then what was parked. A gap the read did not close is
    /// skipped (so the room never stalls) only below an event parked before the read began; a
    /// gap below a later arrival may hold a seq committed after the read, so the answer is then
    /// [`Next::ScheduleFill`]: read again (the room's fill stays scheduled).
    pub fn apply_fill(
        &self,
        room: &str,
        start: FillStart,
        messages: Vec<Message>,
        registry: &Registry,
    ) -> Next {
        let mut rooms = self.lock();
        let Some(order) = rooms.get_mut(room) else {
            return Next::Nothing;
        };
        let RoomOrder::Ready { last, parked, .. } = order else {
            return Next::Nothing;
        };
        for m in messages {
            if m.seq > *last && !parked.contains_key(&m.seq) {
                let seq = m.seq;
                let ev = Arc::new(Event::message(m));
                // Read from the store: never a reason to read again.
                parked.insert(seq, Parked { ev, arrival: 0 });
            }
        }
        Self::drain(order, registry);
        loop {
            let RoomOrder::Ready {
                last,
                parked,
                fill_scheduled,
                ..
            } = order
            else {
                return Next::Nothing;
            };
            // This fill decides whether another is due (the drains above may have marked one
            // as scheduled without anyone scheduling it).
            let Some(first) = parked.first_entry() else {
                *fill_scheduled = false;
                return Next::Nothing;
            };
            if first.get().arrival > start.arrivals {
                *fill_scheduled = true;
                return Next::ScheduleFill;
            }
            let seq = *first.key();
            tracing::warn!(
                room,
                last = *last,
                next = seq,
                "skipping a gap the store cannot fill"
            );
            // It is next now: the drain delivers it and what follows it.
            *last = seq - 1;
            Self::drain(order, registry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::registry::{ConnHandle, KillSwitch, Out};

    fn msg(seq: Seq) -> Message {
        Message {
            room: "r".into(),
            seq,
            from: "a".into(),
            body: format!("m{seq}"),
            ts: 0,
            client_msg_id: None,
            edited_ts: None,
            deleted: false,
            bot: false,
            attachments: Vec::new(),
        }
    }

    fn setup() -> (Sequencer, Registry, crate::fanout::outbox::Receiver<Out>) {
        let registry = Registry::new();
        let (tx, rx) = crate::fanout::outbox::outbox(64);
        let id = registry.add_conn(ConnHandle {
            tx,
            kill: Arc::new(KillSwitch::default()),
            user: None,
            username: None,
            session: "s".into(),
            queued: Arc::default(),
        });
        let room: Arc<str> = "r".into();
        registry.subscribe(id, &room, None);
        let seq = Sequencer::new();
        seq.track(&room);
        (seq, registry, rx)
    }

    fn event_of(m: Message) -> Arc<Event> {
        Arc::new(Event::message(m))
    }

    fn received(rx: &mut crate::fanout::outbox::Receiver<Out>) -> Vec<Seq> {
        let mut out = Vec::new();
        while let Some(Out::Event(ev)) = rx.try_recv() {
            out.push(ev.seq().unwrap());
        }
        out
    }

    #[test]
    fn out_of_order_arrivals_are_delivered_in_order() {
        let (seq, reg, mut rx) = setup();
        seq.offer(event_of(msg(4)), &reg);
        assert_eq!(seq.init("r", 2, &reg), Next::ScheduleFill, "3 is missing");
        assert_eq!(received(&mut rx), Vec::<Seq>::new());
        seq.offer(event_of(msg(3)), &reg);
        seq.offer(event_of(msg(2)), &reg);
        assert_eq!(received(&mut rx), [3, 4]);
    }

    #[test]
    fn a_fill_closes_the_gap_and_duplicates_are_dropped() {
        let (seq, reg, mut rx) = setup();
        seq.init("r", 0, &reg);
        assert_eq!(seq.offer(event_of(msg(3)), &reg), Next::ScheduleFill);
        assert_eq!(
            seq.offer(event_of(msg(5)), &reg),
            Next::Nothing,
            "one fill at a time"
        );
        let start = seq.fill_from("r").unwrap();
        assert_eq!(start.after, 0);
        let next = seq.apply_fill("r", start, vec![msg(1), msg(2), msg(3), msg(4)], &reg);
        assert_eq!(next, Next::Nothing);
        seq.offer(event_of(msg(4)), &reg);
        assert_eq!(received(&mut rx), [1, 2, 3, 4, 5]);
    }

    /// A gap the store does not close is skipped below an event parked before the read began,
    /// so the room does not stall.
    #[test]
    fn a_gap_the_store_cannot_close_is_skipped() {
        let (seq, reg, mut rx) = setup();
        seq.init("r", 0, &reg);
        assert_eq!(seq.offer(event_of(msg(3)), &reg), Next::ScheduleFill);
        let start = seq.fill_from("r").unwrap();
        assert_eq!(
            seq.apply_fill("r", start, vec![msg(1)], &reg),
            Next::Nothing
        );
        assert_eq!(received(&mut rx), [1, 3], "2 is gone for good");
        seq.offer(event_of(msg(2)), &reg);
        assert_eq!(received(&mut rx), Vec::<Seq>::new(), "too late");
        assert_eq!(
            seq.offer(event_of(msg(5)), &reg),
            Next::ScheduleFill,
            "the next gap gets its fill (the skip left none scheduled)"
        );
    }

    /// An event parked while a fill's read is under way may follow a seq committed after the
    /// read: its gap is not skipped but read again (found in a cluster test under a hung Redis:
    /// a subscriber missed a seq the store held).
    #[test]
    fn a_gap_behind_an_arrival_during_the_read_is_read_again() {
        let (seq, reg, mut rx) = setup();
        seq.init("r", 0, &reg);
        assert_eq!(seq.offer(event_of(msg(2)), &reg), Next::ScheduleFill);
        let start = seq.fill_from("r").unwrap();
        // The read sees 1 only; meanwhile 4 arrives (3 was committed after the read began).
        assert_eq!(
            seq.offer(event_of(msg(4)), &reg),
            Next::Nothing,
            "a fill is on"
        );
        assert_eq!(
            seq.apply_fill("r", start, vec![msg(1)], &reg),
            Next::ScheduleFill,
            "3 may be in the store now"
        );
        assert_eq!(received(&mut rx), [1, 2]);
        let again = seq.fill_from("r").unwrap();
        assert_eq!(again.after, 2);
        assert_eq!(
            seq.apply_fill("r", again, vec![msg(3), msg(4)], &reg),
            Next::Nothing
        );
        assert_eq!(received(&mut rx), [3, 4], "nothing skipped");
    }
}
