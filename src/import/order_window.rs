//! The order window: lines read and not yet sent, each waiting only for the
//! lines before it that name the same person.
//!
//! A line is *ready* when no earlier line naming its person is unsettled
//! (in a request the server has not answered, retries and backoffs
//! included); lines naming no one are always ready. A request takes ready
//! lines, oldest first, and a person's consecutive lines may share it, in
//! order. While a request is out, its people's later lines wait here and
//! everyone else's go on: a slow answer, a retry's backoff or a 503 holds
//! back the people that request names (in single mode, one) and nobody else
//! (key-ordered parallel consumers, as in Confluent's parallel-consumer in
//! `KEY` mode).
//!
//! A line may name two people: a merge (its primary and its secondary), an
//! alias (the new id and the previous one). It goes once both are free and
//! it is next for both, and holds both back until it is answered.
//!
//! The window knows nothing of requests or the server: the run hands it
//! lines, takes requests out of it, and says when a request's people are
//! settled.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::import::prehashed::Prehashed;

/// Whom a line writes to, as a number: lines with the same key keep their
/// order. Two people whose names hash alike share a key, which costs them
/// some waiting, never their order.
pub(crate) type PersonKey = u64;

/// The key of the person named `person`.
pub(crate) fn person_key(person: &str) -> PersonKey {
    // A fixed-key hasher: the same person gets the same key in every run.
    let mut hasher = DefaultHasher::new();
    person.hash(&mut hasher);
    hasher.finish()
}

/// One line held in the window, and what it holds of it (`T`): the entry,
/// or only what a batch takes of it.
#[derive(Debug)]
pub(crate) struct Pending<T> {
    pub(crate) line: u64,
    pub(crate) item: T,
    /// Its size as sent, for the window's bound and for filling requests.
    pub(crate) bytes: usize,
    /// The second person it names, if any; it is held in the first one's
    /// queue, and marks its place in the second one's.
    second: Option<PersonKey>,
}

/// The lines of one request taken from the window, in request order, and
/// the people they name: those people's later lines wait until the run
/// calls [`OrderWindow::settled`] with them.
#[derive(Debug)]
pub(crate) struct Taken<T> {
    pub(crate) lines: Vec<Pending<T>>,
    pub(crate) people: Vec<PersonKey>,
}

/// A place in a person's queue.
#[derive(Debug)]
enum Queued<T> {
    /// A line of theirs.
    Line(Pending<T>),
    /// The line of this number, held in `holder`'s queue, names them second.
    Second { line: u64, holder: PersonKey },
}

impl<T> Queued<T> {
    fn line(&self) -> u64 {
        match self {
            Queued::Line(pending) => pending.line,
            Queued::Second { line, .. } => *line,
        }
    }
}

/// A person with lines in the window or in a request.
#[derive(Debug)]
struct Person<T> {
    /// Their lines not yet sent, in input order.
    queue: VecDeque<Queued<T>>,
    /// The bytes of the lines held in `queue`.
    bytes: usize,
    /// Whether a request carrying their lines is unanswered.
    in_flight: bool,
}

impl<T> Default for Person<T> {
    fn default() -> Person<T> {
        Person {
            queue: VecDeque::new(),
            bytes: 0,
            in_flight: false,
        }
    }
}

impl<T> Person<T> {
    fn free(&self) -> bool {
        !self.in_flight && !self.queue.is_empty()
    }
}

/// Lines read and not yet sent; see the module docs.
#[derive(Debug)]
pub(crate) struct OrderWindow<T> {
    /// Everyone with a line in the window or in a request.
    /// Keys are hashes already: the map uses them as they are.
    people: HashMap<PersonKey, Person<T>, Prehashed>,
    /// People who may be ready, by their next line, oldest first: every
    /// person with lines and nothing in flight is here, perhaps more than
    /// once, or with a line since sent; such entries are dropped when met.
    ready: BinaryHeap<Reverse<(u64, PersonKey)>>,
    /// Lines naming no one, in input order: always ready.
    anonymous: VecDeque<Pending<T>>,
    /// The bytes of the lines of people with nothing in flight, and of
    /// lines naming no one.
    ready_bytes: usize,
    /// The bytes of every line held.
    held_bytes: usize,
    /// How many lines are held.
    held_lines: usize,
}

impl<T> Default for OrderWindow<T> {
    fn default() -> OrderWindow<T> {
        OrderWindow {
            people: HashMap::default(),
            ready: BinaryHeap::new(),
            anonymous: VecDeque::new(),
            ready_bytes: 0,
            held_bytes: 0,
            held_lines: 0,
        }
    }
}

impl<T> OrderWindow<T> {
    /// Holds `item`, `bytes` long as sent, read on `line` (after every line
    /// held so far) and naming the people `first` and `second` (see
    /// [`person_key`]), until a request takes it.
    pub(crate) fn push(
        &mut self,
        line: u64,
        item: T,
        bytes: usize,
        (first, second): (Option<PersonKey>, Option<PersonKey>),
    ) {
        let second = second.filter(|&second| Some(second) != first);
        self.held_bytes += bytes;
        self.held_lines += 1;
        let Some(first) = first else {
            self.ready_bytes += bytes;
            self.anonymous.push_back(Pending {
                line,
                item,
                bytes,
                second: None,
            });
            return;
        };
        let pending = Pending {
            line,
            item,
            bytes,
            second,
        };
        if let Some(second) = second {
            let holder = first;
            self.enqueue(second, line, Queued::Second { line, holder }, 0);
        }
        self.enqueue(first, line, Queued::Line(pending), bytes);
    }

    fn enqueue(&mut self, key: PersonKey, line: u64, queued: Queued<T>, bytes: usize) {
        let person = self.people.entry(key).or_default();
        if !person.in_flight {
            if person.queue.is_empty() {
                self.ready.push(Reverse((line, key)));
            }
            self.ready_bytes += bytes;
        }
        person.bytes += bytes;
        person.queue.push_back(queued);
    }

    /// Takes the lines of the next request, oldest ready line first: each
    /// line is offered to `add`, which packs it and says `true`, or says
    /// `false` when the request is full (it must take the first line
    /// offered). A person taken goes on with their next lines while they
    /// fit. `None` when no line is ready.
    pub(crate) fn take(&mut self, mut add: impl FnMut(&Pending<T>) -> bool) -> Option<Taken<T>> {
        let mut taken = Taken {
            lines: Vec::new(),
            people: Vec::new(),
        };
        loop {
            let person_next = self.next_ready();
            let anonymous_next = self.anonymous.front().map(|pending| pending.line);
            let person_first = match (person_next, anonymous_next) {
                (None, None) => break,
                (Some((line, _)), Some(anonymous)) => line < anonymous,
                (Some(_), None) => true,
                (None, Some(_)) => false,
            };
            match person_next.filter(|_| person_first) {
                Some((_, first)) => {
                    if !add(self.next_line_of(first)) {
                        break;
                    }
                    self.ready.pop();
                    let full = self.take_run(first, &mut add, &mut taken);
                    if full {
                        break;
                    }
                }
                None => {
                    if !add(self.anonymous.front().expect("peeked")) {
                        break;
                    }
                    let pending = self.anonymous.pop_front().expect("peeked");
                    self.ready_bytes -= pending.bytes;
                    self.let_go(pending.bytes);
                    taken.lines.push(pending);
                }
            }
        }
        (!taken.lines.is_empty()).then_some(taken)
    }

    /// The oldest line that can go and the person whose queue holds it,
    /// dropping the heap's entries that are stale (a person since sent, or
    /// whose next line waits for someone else: that someone brings it back).
    fn next_ready(&mut self) -> Option<(u64, PersonKey)> {
        while let Some(&Reverse((line, key))) = self.ready.peek() {
            if let Some(first) = self.can_go(line, key) {
                // The heap entry stays until the line is taken.
                return Some((line, first));
            }
            self.ready.pop();
        }
        None
    }

    /// Whether `line`, next in `key`'s queue, can go: its people are free
    /// and it is next for each. Returns the person whose queue holds it.
    fn can_go(&self, line: u64, key: PersonKey) -> Option<PersonKey> {
        let person = self.people.get(&key).filter(|person| person.free())?;
        let (first, second) = match person.queue.front()? {
            next if next.line() != line => return None,
            Queued::Line(pending) => (key, pending.second),
            Queued::Second { holder, .. } => (*holder, Some(key)),
        };
        let next_for = |key: PersonKey| {
            self.people
                .get(&key)
                .filter(|person| person.free())
                .and_then(|person| person.queue.front())
                .is_some_and(|next| next.line() == line)
        };
        (next_for(first) && second.is_none_or(next_for)).then_some(first)
    }

    /// `first`'s next line, which [`next_ready`](OrderWindow::next_ready) found.
    fn next_line_of(&self, first: PersonKey) -> &Pending<T> {
        match self.people[&first].queue.front() {
            Some(Queued::Line(pending)) => pending,
            _ => unreachable!("next_ready names the person holding the line"),
        }
    }

    /// Takes `first`'s next line (offered to `add` already) and the lines
    /// of theirs after it, alone, while they fit; the people it names wait
    /// for this request's answer. Returns whether the request is full.
    fn take_run(
        &mut self,
        first: PersonKey,
        add: &mut impl FnMut(&Pending<T>) -> bool,
        taken: &mut Taken<T>,
    ) -> bool {
        let person = self
            .people
            .get_mut(&first)
            .expect("a ready person is known");
        person.in_flight = true;
        self.ready_bytes -= person.bytes;
        taken.people.push(first);
        let mut full = false;
        let mut second = None;
        loop {
            let Some(Queued::Line(pending)) = person.queue.pop_front() else {
                unreachable!("offered");
            };
            person.bytes -= pending.bytes;
            second = second.or(pending.second);
            self.held_bytes -= pending.bytes;
            self.held_lines -= 1;
            taken.lines.push(pending);
            match person.queue.front() {
                // A line naming no one else: it may share the request.
                Some(Queued::Line(next)) if next.second.is_none() => {
                    if !add(next) {
                        full = true;
                        break;
                    }
                }
                _ => break,
            }
        }
        if let Some(second) = second {
            let person = self.people.get_mut(&second).expect("named second");
            person.queue.pop_front();
            person.in_flight = true;
            self.ready_bytes -= person.bytes;
            taken.people.push(second);
        }
        full
    }

    fn let_go(&mut self, bytes: usize) {
        self.held_bytes -= bytes;
        self.held_lines -= 1;
    }

    /// The request that carried `people`'s lines is answered: their next
    /// lines are ready.
    pub(crate) fn settled(&mut self, people: &[PersonKey]) {
        for key in people {
            let Some(person) = self.people.get_mut(key).filter(|person| person.in_flight) else {
                continue;
            };
            person.in_flight = false;
            match person.queue.front() {
                Some(next) => {
                    self.ready.push(Reverse((next.line(), *key)));
                    self.ready_bytes += person.bytes;
                }
                None => {
                    self.people.remove(key);
                }
            }
        }
    }

    /// The bytes of the lines that are ready to go (or nearly: a line
    /// naming two people may still wait for the second).
    pub(crate) fn ready_bytes(&self) -> usize {
        self.ready_bytes
    }

    /// Whether some line may be ready to go.
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty() || !self.anonymous.is_empty()
    }

    /// The bytes of every line held, ready or waiting.
    pub(crate) fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// How many lines are held, ready or waiting.
    pub(crate) fn held_lines(&self) -> usize {
        self.held_lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each line is 10 bytes.
    const BYTES: usize = 10;

    /// Whom `who` names: `""` no one, `"a"` a, `"a>b"` a and (second) b,
    /// as a merge of b into a does.
    fn people(who: &str) -> (Option<PersonKey>, Option<PersonKey>) {
        match who.split_once('>') {
            Some((first, second)) => (Some(person_key(first)), Some(person_key(second))),
            None if who.is_empty() => (None, None),
            None => (Some(person_key(who)), None),
        }
    }

    fn push(window: &mut OrderWindow<()>, line: u64, who: &str) {
        window.push(line, (), BYTES, people(who));
    }

    /// A window holding `people[i]`'s line `i + 1`.
    fn window(people: &[&str]) -> OrderWindow<()> {
        let mut window = OrderWindow::default();
        for (index, who) in people.iter().enumerate() {
            push(&mut window, index as u64 + 1, who);
        }
        window
    }

    /// Takes a request of at most `most` lines: their line numbers.
    fn take(window: &mut OrderWindow<()>, most: usize) -> Option<(Vec<u64>, Vec<PersonKey>)> {
        let mut count = 0;
        let taken = window.take(|_| {
            count += 1;
            count <= most
        })?;
        Some((
            taken.lines.iter().map(|pending| pending.line).collect(),
            taken.people,
        ))
    }

    #[test]
    fn a_request_takes_the_oldest_ready_lines_and_a_persons_run_in_order() {
        let mut window = window(&["a", "b", "a", "", "c"]);
        let (lines, _) = take(&mut window, 10).unwrap();
        assert_eq!(
            lines,
            [1, 3, 2, 4, 5],
            "a's two lines travel together, in order"
        );
        assert!(take(&mut window, 10).is_none());
        assert_eq!((window.held_lines(), window.held_bytes()), (0, 0));
    }

    #[test]
    fn a_persons_later_lines_wait_for_their_request_and_nobody_elses() {
        let mut window = window(&["slow", "b"]);
        let (first, slow) = take(&mut window, 1).unwrap();
        assert_eq!(first, [1]);
        push(&mut window, 3, "slow");
        push(&mut window, 4, "c");
        push(&mut window, 5, "");
        let (next, _) = take(&mut window, 10).unwrap();
        assert_eq!(next, [2, 4, 5], "line 3 waits for line 1's answer");
        assert!(take(&mut window, 10).is_none());
        assert!(!window.has_ready());
        assert_eq!(window.held_lines(), 1);
        window.settled(&slow);
        assert!(window.has_ready());
        assert_eq!(take(&mut window, 10).unwrap().0, [3]);
    }

    #[test]
    fn a_full_request_leaves_the_rest_of_a_persons_run_waiting_for_its_answer() {
        let mut window = window(&["a", "a", "a", "b"]);
        let (lines, people) = take(&mut window, 2).unwrap();
        assert_eq!(lines, [1, 2]);
        assert_eq!(
            take(&mut window, 10).unwrap().0,
            [4],
            "line 3 is a's: it must not race line 2"
        );
        window.settled(&people);
        assert_eq!(take(&mut window, 10).unwrap().0, [3]);
    }

    #[test]
    fn ready_bytes_count_only_lines_that_can_go() {
        let mut window = window(&["a"]);
        let one = window.ready_bytes();
        assert_eq!(one, BYTES);
        let (_, people) = take(&mut window, 1).unwrap();
        push(&mut window, 2, "a");
        push(&mut window, 3, "a");
        assert_eq!(window.ready_bytes(), 0, "a's lines wait");
        assert_eq!(window.held_bytes(), 2 * one);
        window.settled(&people);
        assert_eq!(window.ready_bytes(), 2 * one);
        window.settled(&people);
        assert_eq!(
            window.ready_bytes(),
            2 * one,
            "settling twice changes nothing"
        );
    }

    #[test]
    fn a_settled_person_with_nothing_left_is_forgotten() {
        let mut window = window(&["a", "b"]);
        let (_, people) = take(&mut window, 10).unwrap();
        assert_eq!(window.people.len(), 2);
        window.settled(&people);
        assert!(window.people.is_empty());
    }

    #[test]
    fn a_merge_waits_for_its_secondarys_earlier_lines_and_holds_their_later_ones() {
        let mut window = window(&["b"]);
        let (_, b) = take(&mut window, 10).unwrap();
        push(&mut window, 2, "a");
        push(&mut window, 3, "a>b");
        push(&mut window, 4, "b");
        push(&mut window, 5, "c");
        let (lines, a_and_c) = take(&mut window, 10).unwrap();
        assert_eq!(
            lines,
            [2, 5],
            "the merge waits for b's line 1, and b's line 4 for the merge"
        );
        assert!(take(&mut window, 10).is_none());
        window.settled(&b);
        assert!(take(&mut window, 10).is_none(), "a's line 2 is still out");
        window.settled(&a_and_c);
        let (lines, a_and_b) = take(&mut window, 10).unwrap();
        assert_eq!(lines, [3]);
        assert_eq!(a_and_b.len(), 2, "the merge holds both people");
        assert!(
            take(&mut window, 10).is_none(),
            "b's line 4 waits for the merge"
        );
        window.settled(&a_and_b);
        assert_eq!(take(&mut window, 10).unwrap().0, [4]);
        assert_eq!(window.held_lines(), 0);
    }

    #[test]
    fn a_merge_goes_once_both_its_people_are_answered() {
        let mut window = window(&["b", "a"]);
        push(&mut window, 3, "a>b");
        let (lines, people) = take(&mut window, 10).unwrap();
        assert_eq!(lines, [1, 2], "the merge goes in a request of its own");
        window.settled(&people[..1]);
        assert!(take(&mut window, 10).is_none(), "a's line 2 is out");
        window.settled(&people[1..]);
        let (lines, people) = take(&mut window, 10).unwrap();
        assert_eq!((lines, people.len()), (vec![3], 2));
    }
}
