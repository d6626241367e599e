//! Block checksums: a chunk is checked in blocks of [`BLOCK`] bytes, each
//! with its own CRC32C, so that every byte a node sends has passed a check
//! before it leaves (whole reads and ranges alike), and a bad block is found
//! before anything of it is sent.

/// Bytes covered by one checksum: a multiple of the O_DIRECT alignment, so
/// a read of whole blocks stays aligned. A 64 MiB chunk has 256 of them
/// (1 KiB of checksums).
pub const BLOCK: usize = 256 * 1024;

/// The CRC32C of each block of a chunk, the last one possibly short.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockSums(Vec<u32>);

impl BlockSums {
    /// How many blocks a chunk of `size` bytes has.
    pub fn count_for(size: u64) -> usize {
        size.div_ceil(BLOCK as u64) as usize
    }

    /// The sums of `data`, all at once (for tests and small chunks).
    pub fn of(data: &[u8]) -> BlockSums {
        let mut summer = BlockSummer::default();
        summer.update(data);
        summer.finish().0
    }

    /// The checksum of block `i`, if the chunk has one.
    pub fn get(&self, i: usize) -> Option<u32> {
        self.0.get(i).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The index's form: each sum as 4 little-endian bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    /// Reads the index's form; None if it is not whole sums.
    pub fn from_bytes(bytes: &[u8]) -> Option<BlockSums> {
        if !bytes.len().is_multiple_of(4) {
            return None;
        }
        Some(BlockSums(bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()))
    }
}

/// Computes [`BlockSums`] and the CRC32C of the whole as bytes stream past
/// in pieces of any size.
#[derive(Default)]
pub struct BlockSummer {
    sums: Vec<u32>,
    /// The CRC32C of the bytes of the current block so far, and how many.
    current: u32,
    filled: usize,
    whole: u32,
}

impl BlockSummer {
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(BLOCK - self.filled);
            self.current = crc32c::crc32c_append(self.current, &data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == BLOCK {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        self.whole = if self.filled == BLOCK {
            shift_by_block(self.whole) ^ self.current
        } else {
            crc32c::crc32c_combine(self.whole, self.current, self.filled) // the last block, once
        };
        self.sums.push(self.current);
        (self.current, self.filled) = (0, 0);
    }

    /// The block sums and the CRC32C of every byte.
    pub fn finish(mut self) -> (BlockSums, u32) {
        if self.filled > 0 {
            self.close_block();
        }
        (BlockSums(self.sums), self.whole)
    }
}

/// What appending [`BLOCK`] bytes does to the CRC32C of what came before:
/// `crc32c(a ++ b) = shift_by_block(crc32c(a)) ^ crc32c(b)` for a block `b`.
/// The shift is linear in the CRC's bits, so it is the XOR of its effect
/// on each bit, worked out once. (The crate's `crc32c_combine` works it
/// out on every call: per block, that cost as much as checksumming it.)
fn shift_by_block(crc: u32) -> u32 {
    static BITS: std::sync::OnceLock<[u32; 32]> = std::sync::OnceLock::new();
    let bits = BITS.get_or_init(|| std::array::from_fn(|i| crc32c::crc32c_combine(1 << i, 0, BLOCK)));
    (0..32).filter(|i| crc >> i & 1 == 1).fold(0, |acc, i| acc ^ bits[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_do_not_depend_on_how_the_bytes_were_cut() {
        let data: Vec<u8> = (0..BLOCK * 2 + 77).map(|i| (i * 7 % 251) as u8).collect();
        let (expected, whole) = {
            let mut s = BlockSummer::default();
            s.update(&data);
            s.finish()
        };
        assert_eq!(expected.len(), 3);
        assert_eq!(expected.get(0), Some(crc32c::crc32c(&data[..BLOCK])));
        assert_eq!(expected.get(2), Some(crc32c::crc32c(&data[2 * BLOCK..])));
        assert_eq!(whole, crc32c::crc32c(&data), "the whole CRC32C is the blocks' combined");
        for piece in [1, 4095, BLOCK - 1, BLOCK, BLOCK + 1] {
            let mut s = BlockSummer::default();
            data.chunks(piece).for_each(|p| s.update(p));
            assert_eq!(s.finish(), (expected.clone(), whole), "pieces of {piece}");
        }
        assert_eq!(BlockSums::from_bytes(&expected.to_bytes()), Some(expected));
        assert_eq!(BlockSums::from_bytes(&[1, 2, 3]), None);
        assert_eq!(BlockSums::count_for(0), 0);
        assert_eq!(BlockSums::count_for(BLOCK as u64), 1);
        assert_eq!(BlockSums::count_for(BLOCK as u64 + 1), 2);
        assert!(BlockSummer::default().finish().0.is_empty());
    }
}
