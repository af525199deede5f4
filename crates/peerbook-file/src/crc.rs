//! CRC-32C (Castagnoli, reflected polynomial `0x82F63B78`) through the `crc32c`
//! crate: the SSE 4.2 / ARMv8 CRC instructions, detected at run time, with a
//! software fallback.
//!
//! The same checksum as iSCSI, ext4 metadata, LevelDB and RocksDB: `crc32c(b"123456789")`
//! is `0xE306_9283`. Open checksums every byte of the snapshot and the log, so this
//! is most of its CPU time with a table-driven implementation (about 20 % at 100k
//! peers, issue 19's profile).

/// Continue the CRC-32C `crc` (of some bytes `a`) over `data`: the result is the
/// CRC-32C of `a ++ data`. `crc32c_append(0, data)` is the CRC-32C of `data`.
pub fn crc32c_append(crc: u32, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc, data)
}

/// The CRC-32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLY: u32 = 0x82F6_3B78;

    fn bitwise(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
            }
        }
        !c
    }

    #[test]
    fn known_vectors() {
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        // RFC 3720 B.4: 32 bytes of zeros, of 0xff, ascending.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xffu8; 32]), 0x62A8_AB43);
        let asc: Vec<u8> = (0u8..32).collect();
        assert_eq!(crc32c(&asc), 0x46DD_794E);
    }

    #[test]
    fn matches_bitwise_and_chains() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 1000] {
            assert_eq!(crc32c(&data[..len]), bitwise(&data[..len]), "len {len}");
        }
        for split in [0, 1, 5, 8, 333, 1000] {
            let a = crc32c(&data[..split]);
            assert_eq!(crc32c_append(a, &data[split..]), crc32c(&data));
        }
    }
}
