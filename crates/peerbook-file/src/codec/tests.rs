//! Unit tests of the codec: round trips, every damaged byte refused with its
//! typed [`FormatError`], garbage never panics.

use super::*;

struct Xs(u64);
impl Xs {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn varints_round_trip() {
    for v in [
        0u64,
        1,
        127,
        128,
        300,
        16383,
        16384,
        u32::MAX as u64,
        u64::MAX,
    ] {
        let mut buf = Vec::new();
        put_varint(&mut buf, v);
        assert_eq!(buf.len(), varint_len(v));
        let mut r = Reader { data: &buf, pos: 0 };
        assert_eq!(r.varint("v").unwrap(), v);
        assert_eq!(r.remaining(), 0);
    }
    // 11 continuation bytes, and a 10th byte carrying bits past 64.
    let mut r = Reader {
        data: &[0xff; 11],
        pos: 0,
    };
    assert_eq!(
        r.varint("v"),
        Err(FormatError::VarintOverflow { what: "v", at: 0 })
    );
    let mut bad = vec![0xff; 9];
    bad.push(0x02);
    let mut r = Reader { data: &bad, pos: 0 };
    assert_eq!(
        r.varint("v"),
        Err(FormatError::VarintOverflow { what: "v", at: 0 })
    );
}

#[test]
fn body_round_trip() {
    let mut e = BodyEncoder::new();
    e.put(Space::Peers, b"k", b"v");
    e.delete(Space::Meta, b"");
    e.clear();
    e.put(Space::ByQuality, &[0xff; 200], &[]);
    e.end(7);
    let body = e.finish().unwrap();
    let ops = decode_body(&body).unwrap();
    assert_eq!(
        ops,
        vec![
            LogOp::Put {
                space: Space::Peers,
                key: b"k".to_vec(),
                value: b"v".to_vec()
            },
            LogOp::Delete {
                space: Space::Meta,
                key: Vec::new()
            },
            LogOp::Clear,
            LogOp::Put {
                space: Space::ByQuality,
                key: vec![0xff; 200],
                value: Vec::new()
            },
            LogOp::End { entries: 7 },
        ]
    );
    // Every strict prefix and every extension is rejected.
    for cut in 0..body.len() {
        assert!(decode_body(&body[..cut]).is_err(), "prefix {cut}");
    }
    let mut longer = body.clone();
    longer.push(0);
    assert_eq!(
        decode_body(&longer),
        Err(FormatError::TrailingBytes { count: 1 })
    );
}

/// The write path's one-buffer frame is byte for byte the body encoder's body in
/// [`encode_frame`], and its size from [`entry_size`] / [`delete_size`] is exact.
#[test]
fn frame_builder_matches_body_then_frame() {
    let mut rng = Xs(0x5EED_F4A3);
    let lens = [0usize, 1, 127, 128, 200, 16383, 16384];
    // the buffer of the last round's frame, as the backend keeps it
    let mut spare = Vec::new();
    for round in 0..40 {
        let count = 1 + rng.next() % 6;
        let (mut body, mut size) = (BodyEncoder::new(), 0usize);
        let mut ops = Vec::new();
        for _ in 0..count {
            let space = Space::ALL[(rng.next() % 4) as usize];
            let key = vec![rng.next() as u8; lens[(rng.next() % 7) as usize]];
            let value = vec![rng.next() as u8; lens[(rng.next() % 7) as usize]];
            if rng.next().is_multiple_of(3) {
                body.delete(space, &key);
                size += delete_size(key.len());
                ops.push((space, key, None));
            } else {
                body.put(space, &key, &value);
                size += entry_size(key.len(), value.len()) as usize;
                ops.push((space, key, Some(value)));
            }
        }
        let mut frame = FrameBuilder::new(count, size);
        let mut batch = peerbook::backend::WriteBatch::new();
        for (space, key, value) in &ops {
            match value {
                Some(v) => {
                    frame.put(*space, key, v);
                    batch.put(*space, key.clone(), v.clone());
                }
                None => {
                    frame.delete(*space, key);
                    batch.delete(*space, key.clone());
                }
            }
        }
        assert_eq!(frame.check_size(), Ok(()));
        let synced_to = rng.next() >> (round % 64);
        let from_batch = FrameBuilder::for_batch(&batch).seal(0xC0FF_EE00 ^ round, synced_to);
        let built = frame.seal(0xC0FF_EE00 ^ round, synced_to);
        assert_eq!(from_batch, built, "round {round}: the write path's frame");
        let reused = FrameBuilder::for_batch_in(spare, &batch).seal(0xC0FF_EE00 ^ round, synced_to);
        assert_eq!(
            reused, built,
            "round {round}: a frame built in a reused buffer"
        );
        spare = reused;
        let body = body.finish().unwrap();
        assert_eq!(built.len(), FRAME_HEADER_LEN + body.len(), "round {round}");
        assert_eq!(FRAME_HEADER_LEN + varint_len(count) + size, built.len());
        assert_eq!(built, encode_frame(0xC0FF_EE00 ^ round, synced_to, &body));
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Xs(0x1234_5678_9abc_def1);
    for round in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 3 == 0 && !buf.is_empty() {
            // plausible small op counts and tags make the decoder go deeper
            buf[0] = (rng.next() % 4) as u8;
            if buf.len() > 1 {
                buf[1] = (rng.next() % 5) as u8;
            }
        }
        let _ = decode_body(&buf);
        let seed = frame_seed(rng.next() % 3, &[]);
        let _ = read_frame(&buf, (rng.next() % 8) as usize, seed);
        let _ = scan_after(&buf, 0, seed);
        let _ = check_file_header(FileKind::Log, &buf, 1);
    }
    // Huge declared lengths allocate nothing.
    let mut huge = Vec::new();
    put_varint(&mut huge, 1);
    huge.push(OP_PUT);
    huge.push(0);
    put_varint(&mut huge, u64::MAX / 2);
    assert!(matches!(
        decode_body(&huge),
        Err(FormatError::LengthPastEnd { what: "key", .. })
    ));
    let mut many = Vec::new();
    put_varint(&mut many, u64::MAX);
    assert!(matches!(
        decode_body(&many),
        Err(FormatError::OpCount {
            count: u64::MAX,
            ..
        })
    ));
}

#[test]
fn frames_and_headers() {
    let seed = frame_seed(3, &[]);
    let frame = encode_frame(seed, 24, b"\x01\x03");
    let f = read_frame(&frame, 0, seed).unwrap();
    assert_eq!(f.synced_to, 24);
    assert_eq!(f.body, b"\x01\x03");
    assert_eq!(f.end, frame.len());
    assert!(
        read_frame(&frame, 0, frame_seed(4, &[])).is_err(),
        "other generation"
    );
    for cut in 0..frame.len() {
        assert!(read_frame(&frame[..cut], 0, seed).is_err());
    }
    for bit in 0..frame.len() * 8 {
        let mut bad = frame.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(read_frame(&bad, 0, seed).is_err(), "bit {bit}");
    }

    let h = encode_file_header(FileKind::Snapshot, 9, &[5; SALT_LEN]);
    check_file_header(FileKind::Snapshot, &h, 9).unwrap();
    assert!(matches!(
        check_file_header(FileKind::Snapshot, &h, 8),
        Err(FormatError::GenerationMismatch {
            found: 9,
            expected: 8
        })
    ));
    assert!(matches!(
        check_file_header(FileKind::Log, &h, 9),
        Err(FormatError::BadMagic { kind: "log", .. })
    ));
    assert!(matches!(
        check_file_header(FileKind::Snapshot, &h[..10], 9),
        Err(FormatError::TruncatedHeader { len: 10, .. })
    ));
    let mut newer = h;
    newer[8..12].copy_from_slice(&3u32.to_le_bytes());
    assert!(matches!(
        check_file_header(FileKind::Snapshot, &newer, 9),
        Err(FormatError::NewerVersion { version: 3, .. })
    ));

    // the salt seeds the frame CRCs; a version-1 header (no salt) still reads
    let other = encode_file_header(FileKind::Snapshot, 9, &[6; SALT_LEN]);
    let (a, b) = (
        check_file_header(FileKind::Snapshot, &h, 9).unwrap(),
        check_file_header(FileKind::Snapshot, &other, 9).unwrap(),
    );
    assert_eq!((a.len, b.len), (FILE_HEADER_LEN, FILE_HEADER_LEN));
    assert_ne!(a.seed, b.seed, "the salt seeds the frame checksums");
    let mut v1 = [0u8; 24];
    v1[0..8].copy_from_slice(FileKind::Log.magic());
    v1[8..12].copy_from_slice(&1u32.to_le_bytes());
    v1[12..20].copy_from_slice(&9u64.to_le_bytes());
    let crc = crc32c(&v1[0..20]);
    v1[20..24].copy_from_slice(&crc.to_le_bytes());
    let hv1 = check_file_header(FileKind::Log, &v1, 9).unwrap();
    assert_eq!(
        hv1,
        Header {
            len: 24,
            seed: frame_seed(9, &[])
        }
    );
    assert_eq!(
        frame_seed(9, &[]),
        crc32c(&9u64.to_le_bytes()),
        "v1 seed unchanged"
    );
}

#[test]
fn witness_search() {
    let seed = frame_seed(1, &[]);
    let h = FILE_HEADER_LEN;
    let mut log = vec![0u8; h];
    let a = encode_frame(seed, h as u64, b"\x01\x03");
    log.extend_from_slice(&a);
    let b_off = log.len();
    let b = encode_frame(seed, h as u64, b"\x01\x03");
    log.extend_from_slice(&b);
    // c claims everything up to its own start durable
    let c_off = log.len();
    let c = encode_frame(seed, c_off as u64, b"\x01\x03");
    log.extend_from_slice(&c);
    assert_eq!(scan_after(&log, h, seed), After::Witness(c_off));
    assert_eq!(scan_after(&log, b_off, seed), After::Witness(c_off));
    assert_eq!(
        scan_after(&log, c_off, seed),
        After::Torn {
            valid_frames_after: 0
        }
    );
    // a frame that claims less than the bad offset is no witness
    let mut log2 = log[..c_off].to_vec();
    log2.extend_from_slice(&encode_frame(seed, h as u64, b"\x01\x03"));
    assert_eq!(
        scan_after(&log2, h, seed),
        After::Torn {
            valid_frames_after: 2
        }
    );
}

/// The frames of `file` as the whole-buffer reader sees them: each frame's
/// `(offset, synced_to, body)`, then the offset and error of a bad frame, if any.
type Walk = (Vec<(usize, u64, Vec<u8>)>, Option<(usize, FormatError)>);

fn walk_buffer(file: &[u8], generation: u64) -> Result<Walk, FormatError> {
    let header = check_file_header(FileKind::Log, file, generation)?;
    let (mut frames, mut off) = (Vec::new(), header.len);
    while off < file.len() {
        match read_frame(file, off, header.seed) {
            Ok(f) => {
                frames.push((off, f.synced_to, f.body.to_vec()));
                off = f.end;
            }
            Err(e) => return Ok((frames, Some((off, e)))),
        }
    }
    Ok((frames, None))
}

fn walk_stream(file: &[u8], generation: u64) -> Result<(Walk, Vec<u8>), FormatError> {
    let reader = Box::new(std::io::Cursor::new(file.to_vec()));
    let (_, mut stream) = FrameStream::open(FileKind::Log, reader, generation).unwrap()?;
    let mut frames = Vec::new();
    loop {
        let off = stream.offset();
        match stream.next().unwrap() {
            Next::Frame { synced_to } => frames.push((off, synced_to, stream.body().to_vec())),
            Next::End => return Ok(((frames, None), Vec::new())),
            Next::Bad { error } => {
                let rest = stream.into_rest().unwrap();
                return Ok(((frames, Some((off, error))), rest));
            }
        }
    }
}

/// Open streams files frame by frame: it must see exactly the frames, bad frame
/// and error that the whole-buffer reader sees, on every damage, and hand the
/// torn-tail scan the same bytes.
#[test]
fn streamed_frames_match_the_whole_buffer_reader() {
    let mut rng = Xs(0x0dd_ba11_cafe_f00d);
    for version in [1u32, 2] {
        let generation = 7;
        let mut file = if version == 2 {
            encode_file_header(FileKind::Log, generation, &[9; SALT_LEN]).to_vec()
        } else {
            let mut h = Vec::new();
            h.extend_from_slice(b"PBOOKLOG");
            h.extend_from_slice(&1u32.to_le_bytes());
            h.extend_from_slice(&generation.to_le_bytes());
            let crc = crc32c(&h);
            h.extend_from_slice(&crc.to_le_bytes());
            h
        };
        let seed = check_file_header(FileKind::Log, &file, generation)
            .unwrap()
            .seed;
        for i in 0..12u64 {
            let mut enc = BodyEncoder::new();
            let value: Vec<u8> = (0..(rng.next() % 3000)).map(|_| rng.next() as u8).collect();
            enc.put(Space::Peers, &i.to_be_bytes(), &value);
            let synced = file.len() as u64;
            file.extend(encode_frame(seed, synced, &enc.finish().unwrap()));
        }
        for round in 0..3000 {
            let mut bad = file.clone();
            match round % 4 {
                0 => bad.truncate((rng.next() % file.len() as u64) as usize),
                1 => {
                    let at = (rng.next() % file.len() as u64) as usize;
                    bad[at] ^= 1 << (rng.next() % 8);
                }
                2 => {
                    let at = (rng.next() % file.len() as u64) as usize;
                    bad[at] = rng.next() as u8;
                    bad.truncate(file.len() - (rng.next() % 40) as usize);
                }
                _ if round == 3 => {}
                _ => {
                    let at = (rng.next() % file.len() as u64) as usize;
                    bad.splice(at..at, [0u8; 7]);
                }
            }
            let whole = walk_buffer(&bad, generation);
            let streamed = walk_stream(&bad, generation);
            match (whole, streamed) {
                (Ok(whole), Ok((streamed, rest))) => {
                    assert_eq!(whole, streamed, "round {round}");
                    if let Some((off, _)) = whole.1 {
                        assert_eq!(rest, bad[off..], "round {round}: the tail");
                    }
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "round {round}: header"),
                (a, b) => panic!("round {round}: {a:?} vs {:?}", b.map(|b| b.0)),
            }
        }
    }
}

#[test]
fn tail_scan_reports_file_offsets() {
    let seed = frame_seed(2, &[]);
    let mut log = vec![0u8; 40];
    log.extend(encode_frame(seed, 40, b"\x01\x03"));
    let bad = log.len();
    log.extend(b"torn");
    let witness = log.len();
    log.extend(encode_frame(seed, witness as u64, b"\x01\x03"));
    assert_eq!(scan_after(&log, bad, seed), After::Witness(witness));
    assert_eq!(scan_tail(&log[bad..], bad, seed), After::Witness(witness));
}

/// A tail of frame headers every 20 bytes, each valid with the file's seed and
/// claiming a body up to the end of the file whose checksum fails: the scan stops
/// at its budget (twice the tail) instead of checksumming ~n^2/40 bytes. An honest
/// tail (a torn frame, whole frames, another torn frame, whole frames) checksums at
/// most its own length.
#[test]
fn tail_scan_checksums_at_most_twice_the_tail() {
    let seed = frame_seed(1, b"sixteen salt b..");
    let bad = 64;
    let headers = 50_000;
    let len = bad + 7 + headers * FRAME_HEADER_LEN;
    let mut log = vec![0u8; bad + 7];
    while log.len() < len {
        let at = log.len();
        // a witness by its synced_to, if its body checked
        log.extend_from_slice(&forged_header(seed, len - at - FRAME_HEADER_LEN, at as u64));
    }
    assert_eq!(log.len(), len);
    let tail = &log[bad..];
    let (after, checksummed) = scan_counting(tail, bad, seed);
    assert!(
        matches!(after, After::OverBudget { at } if at > bad && at < bad + 7 + 4 * FRAME_HEADER_LEN),
        "{after:?}"
    );
    assert!(checksummed <= scan_budget(tail.len()), "{checksummed}");

    // honest: nothing near the budget
    let mut log = vec![0u8; FILE_HEADER_LEN];
    let whole = |log: &mut Vec<u8>, n: usize| {
        whole_frames(log, seed, n, |i| vec![i as u8; 1 + i * 37 % 3000])
    };
    whole(&mut log, 3);
    let bad = log.len();
    let torn = |log: &mut Vec<u8>| {
        let mut f = encode_frame(seed, FILE_HEADER_LEN as u64, &[7; 5000]);
        f[FRAME_HEADER_LEN + 100..].fill(0);
        log.extend(f);
    };
    torn(&mut log);
    whole(&mut log, 200);
    torn(&mut log);
    whole(&mut log, 200);
    let tail = &log[bad..];
    let (after, checksummed) = scan_counting(tail, bad, seed);
    assert_eq!(
        after,
        After::Torn {
            valid_frames_after: 400
        }
    );
    assert!(checksummed <= tail.len(), "{checksummed} of {}", tail.len());
}

/// `n` whole frames appended to `log`, each one put of `body(i)`, synced to the
/// file header's end.
fn whole_frames(log: &mut Vec<u8>, seed: u32, n: usize, body: impl Fn(usize) -> Vec<u8>) {
    for i in 0..n {
        let mut e = BodyEncoder::new();
        e.put(Space::Peers, b"k", &body(i));
        log.extend(encode_frame(
            seed,
            FILE_HEADER_LEN as u64,
            &e.finish().unwrap(),
        ));
    }
}

/// A header the file's salt validates, claiming `body` bytes and
/// `synced_to`, with a body checksum that fails.
fn forged_header(seed: u32, body: usize, synced_to: u64) -> [u8; FRAME_HEADER_LEN] {
    let mut h = [0u8; FRAME_HEADER_LEN];
    h[0..4].copy_from_slice(&(body as u32).to_le_bytes());
    h[4..12].copy_from_slice(&synced_to.to_le_bytes());
    h[12..16].copy_from_slice(&0xBAD0_C0DEu32.to_le_bytes());
    let head_crc = crc32c_append(seed, &h[0..16]);
    h[16..20].copy_from_slice(&head_crc.to_le_bytes());
    h
}

/// Review 8 (session 26), finding 2: headers that claim no sync after the bad
/// frame cost budget but never refuse the log. Forged ones every 20 bytes (the
/// quadratic attack without witness claims) end the scan as torn within the
/// budget; and stale headers a crash can leave (failed appends cut back and
/// written over, three deep, each claiming a body over the frames written after
/// it) no longer push an honest log over the budget into `OverBudget`.
#[test]
fn headers_claiming_no_later_sync_never_refuse_the_log() {
    let seed = frame_seed(1, b"sixteen salt b..");
    let bad = 64;
    let headers = 50_000;
    let len = bad + 7 + headers * FRAME_HEADER_LEN;
    let mut log = vec![0u8; bad + 7];
    while log.len() < len {
        let at = log.len();
        log.extend_from_slice(&forged_header(seed, len - at - FRAME_HEADER_LEN, 0));
    }
    let tail = &log[bad..];
    let (after, checksummed) = scan_counting(tail, bad, seed);
    assert_eq!(
        after,
        After::Torn {
            valid_frames_after: 0
        }
    );
    assert!(checksummed <= scan_budget(tail.len()), "{checksummed}");

    // honest, after a power cut: the torn frame at `bad`, then three stale
    // headers, each followed by whole frames, each claiming a body to the end
    let mut log = vec![0u8; FILE_HEADER_LEN];
    let whole = |log: &mut Vec<u8>, n: usize| whole_frames(log, seed, n, |i| vec![i as u8; 300]);
    whole(&mut log, 2);
    let bad = log.len();
    log.extend(&encode_frame(seed, FILE_HEADER_LEN as u64, &[7; 900])[..FRAME_HEADER_LEN + 50]);
    let mut stale = Vec::new();
    for _ in 0..3 {
        stale.push(log.len());
        log.extend_from_slice(&[0; FRAME_HEADER_LEN]);
        whole(&mut log, 100);
    }
    let end = log.len();
    for at in stale {
        let h = forged_header(seed, end - at - FRAME_HEADER_LEN, bad as u64);
        log[at..at + FRAME_HEADER_LEN].copy_from_slice(&h);
    }
    let tail = &log[bad..];
    let (after, checksummed) = scan_counting(tail, bad, seed);
    assert!(matches!(after, After::Torn { .. }), "{after:?}");
    assert!(checksummed <= scan_budget(tail.len()), "{checksummed}");
}
