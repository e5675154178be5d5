//! Bounds on what a pickle builds, checked on its opcodes before a reader turns it into
//! values. Nesting depth: serde-pickle's conversion, `eval::pth`'s copies and every drop of
//! nested values recurse, so a pickle nested 10,000 deep overflowed the stack. Size: both
//! readers copy a memoized value at each reference to it, so a few hundred bytes can ask
//! for 2^40 values. Both are computed without building any value (a small model of the
//! pickle machine: objects with their children, memo entries shared, never copied).

/// Deeper than any pickle clipgan reads (AttnGAN's are 3 deep, a state_dict 4).
pub const MAX_DEPTH: u32 = 100;

/// Values after memo references are expanded: generous for any honest file (each value
/// costs at least one byte of pickle unless it is shared through the memo).
pub fn max_values(pickle_bytes: usize) -> u64 {
    16 * pickle_bytes as u64 + 1_000_000
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting of containers (a scalar is 0, `[]` is 1, `[[1]]` is 2).
    pub depth: u32,
    /// The most values (containers and scalars) any one container holds once memo
    /// references are expanded, itself included.
    pub values: u64,
}

/// An error naming the problem when the pickle nests deeper than [`MAX_DEPTH`] or expands
/// beyond [`max_values`]; Ok otherwise (also for malformed pickles, which the reader
/// reports itself: the shape covers what was built before the bad opcode).
pub fn check(data: &[u8]) -> Result<Shape, String> {
    let shape = shape(data);
    if shape.depth > MAX_DEPTH {
        return Err(format!("the pickle nests containers {} deep, more than the {MAX_DEPTH} levels accepted", shape.depth));
    }
    if shape.values > max_values(data.len()) {
        return Err(format!(
            "the pickle expands to {} values through memo references (a {} byte file; at most {} accepted)",
            shape.values,
            data.len(),
            max_values(data.len())
        ));
    }
    Ok(shape)
}

#[derive(Clone, Copy)]
enum Item {
    Mark,
    Scalar,
    Object(usize),
}

/// A container: the objects it holds and how many scalars.
#[derive(Default)]
struct Object {
    children: Vec<usize>,
    scalars: u64,
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<Item>,
    memo: std::collections::HashMap<u64, Item>,
    objects: Vec<Object>,
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn le(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().rev().fold(0u64, |v, b| v << 8 | *b as u64))
    }
    /// A length-prefixed argument: skip it.
    fn counted(&mut self, width: usize) -> Option<()> {
        let n = usize::try_from(self.le(width)?).ok()?;
        self.skip(n)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    /// A scalar whose argument is `fixed` bytes, or counted by a `width`-byte length.
    fn scalar_after(&mut self, fixed: usize, width: usize) -> Option<()> {
        if width > 0 {
            self.counted(width)?;
        } else {
            self.skip(fixed)?;
        }
        self.stack.push(Item::Scalar);
        Some(())
    }
    fn line(&mut self) -> Option<&[u8]> {
        let rest = self.data.get(self.at..)?;
        let n = rest.iter().position(|&c| c == b'\n')?;
        self.at += n + 1;
        Some(&rest[..n])
    }
    fn pop(&mut self) -> Option<Item> {
        self.stack.pop()
    }
    fn pop_mark(&mut self) -> Option<Vec<Item>> {
        let m = self.stack.iter().rposition(|i| matches!(i, Item::Mark))?;
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Some(items)
    }
    fn new_object(&mut self, items: Vec<Item>) -> Item {
        self.objects.push(Object::default());
        let id = self.objects.len() - 1;
        self.add(id, items);
        Item::Object(id)
    }
    fn add(&mut self, to: usize, items: Vec<Item>) {
        for item in items {
            match item {
                Item::Object(c) => self.objects[to].children.push(c),
                Item::Scalar | Item::Mark => self.objects[to].scalars += 1,
            }
        }
    }
    /// Add items to the container on top of the stack (APPEND, SETITEM, BUILD, ...).
    fn add_to_top(&mut self, items: Vec<Item>) -> Option<()> {
        match self.stack.last()? {
            Item::Object(id) => {
                let id = *id;
                self.add(id, items);
                Some(())
            }
            _ => None,
        }
    }
    fn memo_put(&mut self, key: u64) -> Option<()> {
        let top = *self.stack.last()?;
        self.memo.insert(key, top);
        Some(())
    }
    fn memo_get(&mut self, key: u64) -> Option<()> {
        let item = *self.memo.get(&key)?;
        self.stack.push(item);
        Some(())
    }
    fn ascii_number(line: &[u8]) -> Option<u64> {
        std::str::from_utf8(line).ok()?.trim().parse().ok()
    }

    /// Run the opcodes until STOP or until one cannot be followed (None).
    fn run(&mut self) -> Option<()> {
        loop {
            let op = *self.data.get(self.at)?;
            self.at += 1;
            match op {
                b'.' => return Some(()),
                0x80 => self.skip(1)?,
                0x95 => self.skip(8)?,
                b'(' => self.stack.push(Item::Mark),
                b'0' => self.pop().map(|_| ())?,
                b'1' => self.pop_mark().map(|_| ())?,
                b'2' => self.stack.push(*self.stack.last()?),
                // Scalars with fixed, counted or line arguments.
                b'N' | 0x88 | 0x89 => self.stack.push(Item::Scalar),
                b'K' | 0x82 => self.scalar_after(1, 0)?,
                b'M' | 0x83 => self.scalar_after(2, 0)?,
                b'J' | 0x84 => self.scalar_after(4, 0)?,
                b'G' => self.scalar_after(8, 0)?,
                b'U' | b'C' | 0x8c | 0x8a => self.scalar_after(0, 1)?,
                b'T' | b'X' | b'B' | 0x8b => self.scalar_after(0, 4)?,
                0x8d | 0x8e | 0x96 => self.scalar_after(0, 8)?,
                b'I' | b'L' | b'F' | b'S' | b'V' | b'P' => {
                    self.line()?;
                    self.stack.push(Item::Scalar);
                }
                b'c' => {
                    self.line()?;
                    self.line()?;
                    self.stack.push(Item::Scalar);
                }
                0x93 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(Item::Scalar);
                }
                // The memo: references share the object (conservative: a later change
                // to it counts wherever it is referenced, as the readers' copies may).
                b'p' => {
                    let key = Self::ascii_number(self.line()?)?;
                    self.memo_put(key)?;
                }
                b'q' => {
                    let key = self.le(1)?;
                    self.memo_put(key)?;
                }
                b'r' => {
                    let key = self.le(4)?;
                    self.memo_put(key)?;
                }
                0x94 => self.memo_put(self.memo.len() as u64)?,
                b'g' => {
                    let key = Self::ascii_number(self.line()?)?;
                    self.memo_get(key)?;
                }
                b'h' => {
                    let key = self.le(1)?;
                    self.memo_get(key)?;
                }
                b'j' => {
                    let key = self.le(4)?;
                    self.memo_get(key)?;
                }
                // Containers.
                b']' | b'}' | b')' | 0x8f => {
                    let o = self.new_object(Vec::new());
                    self.stack.push(o);
                }
                b'l' | b't' | b'd' | 0x91 | b'o' => {
                    let items = self.pop_mark()?;
                    let o = self.new_object(items);
                    self.stack.push(o);
                }
                b'i' => {
                    self.line()?;
                    self.line()?;
                    let items = self.pop_mark()?;
                    let o = self.new_object(items);
                    self.stack.push(o);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let items = self.stack.split_off(self.stack.len().checked_sub(n)?);
                    let o = self.new_object(items);
                    self.stack.push(o);
                }
                // Calls: the result may hold its arguments.
                b'R' | 0x81 | b'Q' | 0x92 => {
                    let n = match op {
                        b'Q' => 1,
                        0x92 => 3,
                        _ => 2,
                    };
                    let items = self.stack.split_off(self.stack.len().checked_sub(n)?);
                    let o = self.new_object(items);
                    self.stack.push(o);
                }
                b'a' | b'b' => {
                    let v = self.pop()?;
                    self.add_to_top(vec![v])?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.add_to_top(vec![k, v])?;
                }
                b'e' | b'u' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.add_to_top(items)?;
                }
                _ => return None,
            }
        }
    }
}

/// The shape of everything the pickle builds (up to STOP or the first opcode that
/// cannot be followed): the deepest and the largest of all its containers.
pub fn shape(data: &[u8]) -> Shape {
    let mut m = Machine { data, at: 0, stack: Vec::new(), memo: Default::default(), objects: Vec::new() };
    let _ = m.run();
    // Depth and expanded size of every object, children first, without recursion. A
    // cycle (a container holding itself through the memo) is not followed: the readers
    // refuse recursive structures themselves.
    let n = m.objects.len();
    let mut done: Vec<Option<(u32, u64)>> = vec![None; n];
    let mut entered = vec![false; n];
    let mut best = Shape { depth: 0, values: 0 };
    for start in 0..n {
        if done[start].is_some() {
            continue;
        }
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        entered[start] = true;
        while let Some(&mut (o, ref mut next)) = path.last_mut() {
            if let Some(&c) = m.objects[o].children.get(*next) {
                *next += 1;
                if done[c].is_none() && !entered[c] {
                    entered[c] = true;
                    path.push((c, 0));
                }
                continue;
            }
            let (mut depth, mut values) = (0u32, 1 + m.objects[o].scalars);
            for &c in &m.objects[o].children {
                if let Some((d, v)) = done[c] {
                    depth = depth.max(d);
                    values = values.saturating_add(v);
                }
            }
            done[o] = Some((depth + 1, values));
            best.depth = best.depth.max(depth + 1);
            best.values = best.values.max(values);
            path.pop();
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_nested_lists() {
        // pickle.dumps([1, [2, 3]], protocol=2)
        let p = b"\x80\x02]q\x00(K\x01]q\x01(K\x02K\x03ee.";
        assert_eq!(shape(p), Shape { depth: 2, values: 5 });
        assert_eq!(shape(b"\x80\x02K\x05."), Shape { depth: 0, values: 0 });
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut p = b"\x80\x02]".to_vec();
        p.extend(b"(]".repeat(10_000));
        p.extend(b"e".repeat(10_000));
        p.push(b'.');
        let e = check(&p).unwrap_err();
        assert!(e.contains("10001 deep"), "{e}");
        // Truncated before STOP: what was built still counts.
        assert!(check(&p[..p.len() - 5_000]).is_err());
    }

    #[test]
    fn memo_expansion_is_refused() {
        // a = [0]; then 40 times: a = [a, a] through the memo.
        let mut p = b"\x80\x02]q\x00K\x00a".to_vec();
        for i in 1..=40u8 {
            p.extend([b']', b'q', i, b'(', b'h', i - 1, b'h', i - 1, b'e']);
        }
        p.push(b'.');
        let e = check(&p).unwrap_err();
        assert!(e.contains("expands to"), "{e}");
    }
}
