//! The streaming reader: a bounded window whatever the size, the preamble and
//! header checked before reading on, resynchronisation across large damage,
//! concatenated recordings, files that are not files.

use std::io::{self, Read};

use bytes::BytesMut;

use super::super::format::*;
use super::super::reader::{Damage, open, open_file, open_stream, window};
use super::{drop_entry, frame_starts, header, read_all, sample};

/// Hands out at most `max` bytes per read (cycling 1..=max), as a pipe or a
/// slow disk might: the reader must not care how its input is cut.
struct Trickle<'a> {
    data: &'a [u8],
    max: usize,
    n: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.n = self.n % self.max + 1;
        let k = self.n.min(out.len()).min(self.data.len());
        out[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

/// Counts what is read through it.
struct Counting<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(out)?;
        self.read += k as u64;
        Ok(k)
    }
}

/// `head`, then `frame` `n` times, then `tail`: a large recording made up on
/// the fly, never held in memory.
struct Repeat {
    parts: [Vec<u8>; 3],
    n: u64,
    /// Which part, how many times it was given out, where in it.
    part: usize,
    done: u64,
    at: usize,
}

impl Repeat {
    fn new(head: Vec<u8>, frame: Vec<u8>, n: u64, tail: Vec<u8>) -> Repeat {
        Repeat {
            parts: [head, frame, tail],
            n,
            part: 0,
            done: 0,
            at: 0,
        }
    }

    fn len(&self) -> u64 {
        (self.parts[0].len() + self.parts[2].len()) as u64 + self.parts[1].len() as u64 * self.n
    }
}

impl Read for Repeat {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut k = 0;
        while k < out.len() && self.part < 3 {
            let reps = if self.part == 1 { self.n } else { 1 };
            if self.done == reps {
                (self.part, self.done, self.at) = (self.part + 1, 0, 0);
                continue;
            }
            let p = &self.parts[self.part];
            let m = (p.len() - self.at).min(out.len() - k);
            out[k..k + m].copy_from_slice(&p[self.at..self.at + m]);
            (self.at, k) = (self.at + m, k + m);
            if self.at == p.len() {
                (self.at, self.done) = (0, self.done + 1);
            }
        }
        Ok(k)
    }
}

/// A read error after `ok` bytes.
struct Failing<'a> {
    data: &'a [u8],
    ok: usize,
}

impl Read for Failing<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::other("simulated I/O error"));
        }
        let k = out.len().min(self.ok).min(self.data.len());
        out[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        self.ok -= k;
        Ok(k)
    }
}

fn encoded(entries: &[Entry]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for e in entries {
        e.encode(&mut buf);
    }
    buf.to_vec()
}

fn head() -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&preamble());
    Entry::Header(Box::new(header())).encode(&mut buf);
    buf.to_vec()
}

fn end_entry() -> Entry {
    Entry::End(EndEntry {
        session: SessionEntry {
            duration_s: 1.5,
            events_read: 20,
            undecodable: 0,
        },
        lost: Default::default(),
    })
}

fn read_stream<R: Read>(src: R, len: Option<u64>) -> (Vec<(u64, Entry)>, Vec<Damage>) {
    let (h, mut r) = open_stream(src, len).unwrap();
    assert_eq!(h, header());
    let got = r.by_ref().collect();
    (got, r.damage().to_vec())
}

/// Whatever the cut of the reads (1 to 7 bytes at a time), intact, cut or
/// flipped recordings read exactly as from memory.
#[test]
fn reads_cut_any_way_read_the_same() {
    let (data, _) = sample(true);
    let starts = frame_starts(&data);
    let mut cases = vec![data.clone()];
    for cut in (starts[18]..data.len()).step_by(7) {
        cases.push(data[..cut].to_vec());
    }
    for at in (starts[0]..data.len()).step_by(37) {
        let mut bad = data.clone();
        bad[at] ^= 0x5a;
        cases.push(bad);
    }
    for case in &cases {
        let (_, mut mem) = open(case).unwrap();
        let want: Vec<_> = mem.by_ref().collect();
        for max in [1, 2, 3, 7] {
            let src = Trickle {
                data: case,
                max,
                n: 0,
            };
            let (got, damage) = read_stream(src, Some(case.len() as u64));
            assert_eq!(got, want, "{max}-byte reads");
            assert_eq!(damage, mem.damage(), "{max}-byte reads");
        }
    }
}

/// 2 GiB of zeros (as a sparse file or /dev/zero gives them) are refused at
/// the signature, after one read.
#[test]
fn a_file_of_zeros_is_refused_after_one_read() {
    let mut src = Counting {
        inner: io::repeat(0).take(2 << 30),
        read: 0,
    };
    let err = open_stream(&mut src, Some(2 << 30)).err().expect("refused");
    assert!(err.contains("no NDREC signature"), "{err}");
    println!("zeros: refused after reading {} bytes", src.read);
    assert!(
        src.read <= window::FIRST_READ as u64,
        "read {} bytes",
        src.read
    );
}

/// A valid preamble and a header frame claiming an implausible length: the
/// reader stops at the header without reading what it claims.
#[test]
fn a_bad_header_is_refused_before_reading_on() {
    let mut lying = preamble().to_vec();
    lying.extend_from_slice(&SYNC);
    lying.extend_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    lying.push(kind::HEADER);
    let mut src = Counting {
        inner: io::Read::chain(&lying[..], io::repeat(7).take(1 << 30)),
        read: 0,
    };
    let err = open_stream(&mut src, None).err().expect("refused");
    assert!(err.contains("header record is damaged"), "{err}");
    assert!(
        src.read <= window::FIRST_READ as u64,
        "read {} bytes",
        src.read
    );
}

/// 64 MiB of drops (half a million frames) made up on the fly: every one is
/// read, in a window of a few hundred KiB.
#[test]
fn a_large_recording_streams_in_a_small_window() {
    let frame = encoded(&[drop_entry(1)]);
    let n = (64 << 20) / frame.len() as u64;
    let src = Repeat::new(head(), frame.clone(), n, encoded(&[end_entry()]));
    let len = src.len();
    let (_, mut r) = open_stream(src, Some(len)).unwrap();
    let mut drops = 0u64;
    let mut last = 0;
    for (at, e) in r.by_ref() {
        if matches!(e, Entry::Drop(_)) {
            drops += 1;
        }
        last = at;
    }
    println!(
        "{len} bytes, {drops} drops, window peak {} bytes",
        r.window_peak()
    );
    assert_eq!(drops, n);
    assert_eq!(last + encoded(&[end_entry()]).len() as u64, len);
    assert!(r.damage().is_empty(), "{:?}", r.damage());
    assert!(r.window_peak() <= 2 * window::CHUNK, "{}", r.window_peak());
}

/// 20 MiB of garbage in the middle: reported as one stretch at the right
/// offsets, the frames after it read, the window still small.
#[test]
fn resync_across_large_damage_streams() {
    let drops: Vec<Entry> = (0..5).map(drop_entry).collect();
    let mut first = head();
    first.extend(encoded(&drops));
    let garbage_at = first.len() as u64;
    let garbage = 20u64 << 20;
    let mut tail = encoded(&drops);
    tail.extend(encoded(&[end_entry()]));
    let src = Repeat::new(first, vec![0xaa], garbage, tail);
    let len = src.len();
    let (got, damage) = read_stream(src, Some(len));
    assert_eq!(got.len(), 11);
    assert_eq!(
        damage,
        vec![Damage::Corrupt {
            offset: garbage_at,
            len: garbage,
            why: "no record signature".into()
        }]
    );
    assert_eq!(got[5].0, garbage_at + garbage);
}

/// The largest frame there may be (64 MiB) is read whole, and the window
/// never holds more than one of it plus a read.
#[test]
fn a_largest_frame_fits_the_window() {
    let mut big = BytesMut::new();
    frame(200, &vec![0x42; MAX_PAYLOAD as usize], &mut big);
    let mut data = head();
    let big_at = data.len() as u64;
    data.extend_from_slice(&big);
    data.extend(encoded(&[drop_entry(1), end_entry()]));
    let (_, mut r) = open(&data).unwrap();
    assert_eq!(r.by_ref().count(), 2);
    assert_eq!(
        r.damage(),
        [Damage::UnknownKind {
            offset: big_at,
            kind: 200
        }]
    );
    println!("window peak {} bytes", r.window_peak());
    assert!(r.window_peak() <= window::MAX_WINDOW, "{}", r.window_peak());
    assert!(r.window_peak() >= MAX_PAYLOAD as usize);
}

/// A read error mid-file: what came before is replayed, the error is
/// reported where it happened.
#[test]
fn a_read_error_is_reported_where_it_happened() {
    let (data, entries) = sample(true);
    let starts = frame_starts(&data);
    let ok = starts[5] + 3;
    let (got, damage) = read_stream(Failing { data: &data, ok }, None);
    let got: Vec<Entry> = got.into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, entries[..5]);
    // Only the error: the record it cut is not "truncated".
    let [Damage::Unreadable { offset, why }] = &damage[..] else {
        panic!("{damage:?}")
    };
    assert_eq!(*offset, ok as u64);
    assert!(why.contains("simulated"), "{why}");
    assert!(
        damage[0]
            .to_string()
            .starts_with(&format!("reading stopped at byte {ok} ("))
    );
    // Before the header is read whole: refused, saying why.
    let err = open_stream(
        Failing {
            data: &data,
            ok: 20,
        },
        None,
    )
    .err()
    .unwrap();
    assert!(
        err.contains("cannot read it (at byte 20): simulated"),
        "{err}"
    );
}

/// Two recordings one after the other: the first replays, the second is
/// named (where, when it started) and not merged into the first.
#[test]
fn a_second_recording_is_reported_not_merged() {
    let (first, entries) = sample(true);
    let (second, _) = sample(true);
    let both = [first.clone(), second.clone()].concat();
    let (got, damage) = read_all(&both).unwrap();
    assert_eq!(got, entries);
    let end = both.len() as u64;
    let [
        Damage::SecondRecording {
            offset,
            end: e,
            about,
        },
    ] = &damage[..]
    else {
        panic!("{damage:?}")
    };
    assert_eq!((*offset, *e), (first.len() as u64, end));
    assert_eq!(
        about,
        "netdrop 0.1.0 on box, started 2023-11-14 22:15:00 UTC"
    );
    let line = damage[0].to_string();
    println!("{line}");
    assert!(
        line.starts_with(&format!(
            "bytes {}..{end} are a second recording",
            first.len()
        )) && line.contains(&format!("skip={}", first.len())),
        "{line}"
    );

    // The first without its end: that is said too, then the second.
    let (cut, unended) = sample(false);
    let (got, damage) = read_all(&[cut.clone(), second.clone()].concat()).unwrap();
    assert_eq!(got, unended);
    assert_eq!(
        damage[0],
        Damage::NoEnd {
            at: cut.len() as u64
        }
    );
    assert!(
        matches!(damage[1], Damage::SecondRecording { offset, .. } if offset == cut.len() as u64)
    );
    assert_eq!(damage.len(), 2);

    // The first cut inside a record (killed, then another recording appended).
    let starts = frame_starts(&first);
    let torn = starts[20] + 9;
    let both = [&first[..torn], &second].concat();
    let (got, damage) = read_all(&both).unwrap();
    assert_eq!(got, entries[..20]);
    let [
        Damage::Corrupt { offset, len, .. },
        Damage::NoEnd { at },
        Damage::SecondRecording { offset: s, .. },
    ] = &damage[..]
    else {
        panic!("{damage:?}")
    };
    assert_eq!((*offset, *offset + len), (starts[20] as u64, torn as u64));
    assert_eq!((*at, *s), (torn as u64, torn as u64));

    // The second's preamble damaged: its header still tells it apart.
    let mut both = [first.clone(), second.clone()].concat();
    both[first.len() + 2] ^= 0xff;
    let (got, damage) = read_all(&both).unwrap();
    assert_eq!(got, entries);
    let [
        Damage::Corrupt { offset, len, .. },
        Damage::SecondRecording {
            offset: s, about, ..
        },
    ] = &damage[..]
    else {
        panic!("{damage:?}")
    };
    let header_at = (first.len() + PREAMBLE_LEN) as u64;
    assert_eq!(
        (*offset, *offset + len, *s),
        (first.len() as u64, header_at, header_at)
    );
    assert!(about.contains("preamble missing"), "{about}");

    // The second's header is the file's: its strings are shown escaped.
    let mut h = header();
    h.hostname = "evil\u{1b}[2J\nbox".into();
    let mut evil = preamble().to_vec();
    evil.extend(encoded(&[Entry::Header(Box::new(h)), end_entry()]));
    let (_, damage) = read_all(&[first.clone(), evil].concat()).unwrap();
    let line = damage[0].to_string();
    assert!(!line.contains('\u{1b}') && !line.contains('\n'), "{line:?}");
    println!("{line}");
    assert!(
        line.contains(&format!("on {},", crate::text::safe("evil\u{1b}[2J\nbox"))),
        "{line:?}"
    );

    // Three: the second is where reading stops; the third is in its bytes.
    let three = [first.clone(), second.clone(), second.clone()].concat();
    let (got, damage) = read_all(&three).unwrap();
    assert_eq!(got, entries);
    assert!(
        matches!(&damage[..], [Damage::SecondRecording { offset, end, .. }]
            if *offset == first.len() as u64 && *end == three.len() as u64),
        "{damage:?}"
    );
}

/// The signature alone inside a record's bytes is not a second recording:
/// only where a record may start, or found while skipping damage with a
/// version after it.
#[test]
fn a_signature_inside_a_record_is_data() {
    let mut entries: Vec<Entry> = (0..3).map(drop_entry).collect();
    if let Entry::Drop(d) = &mut entries[1] {
        d.rec.comm = String::from_utf8(MAGIC[..7].to_vec()).unwrap();
        d.location = format!("{}\u{1a}{}", d.rec.comm, "\u{1}\0\0\0\0\0\0\0");
    }
    entries.push(end_entry());
    let mut data = head();
    data.extend(encoded(&entries));
    let (got, damage) = read_all(&data).unwrap();
    assert_eq!(got, entries);
    assert!(damage.is_empty(), "{damage:?}");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("netdrop-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `f` on a thread; fails if it takes over 10 s (a FIFO that blocks).
fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("did not return within 10 s")
}

/// What is not a regular file is refused before it is read, with one line
/// naming it; a FIFO does not block.
#[test]
fn what_is_not_a_file_is_refused_by_name() {
    let dir = temp_dir("kinds");
    let fifo = dir.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let sock = dir.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let cases = [
        (fifo, "a FIFO"),
        (dir.clone(), "a directory"),
        ("/dev/null".into(), "a character device"),
        ("/dev/zero".into(), "a character device"),
        (sock, "a socket"),
    ];
    for (path, what) in cases {
        let p = path.clone();
        let err =
            within_10s(move || open_file(&p).err().map(|e| format!("{e:#}"))).expect("refused");
        println!("{err}");
        assert_eq!(
            err,
            format!(
                "{}: not a regular file ({what}): a recording is a file written by netdrop record",
                path.display()
            )
        );
    }
    let err = format!("{:#}", open_file(&dir.join("missing")).err().unwrap());
    assert!(err.starts_with("reading the recording"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A 2 GiB sparse file of zeros is refused at its first bytes; a symlink to a
/// recording is followed; a recording file reads as from memory.
#[test]
fn files_are_read_from_their_start_only() {
    let dir = temp_dir("files");
    let zeros = dir.join("zeros.ndr");
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let started = std::time::Instant::now();
    let err = format!("{:#}", open_file(&zeros).err().unwrap());
    assert_eq!(
        err,
        format!(
            "{}: not a netdrop recording (no NDREC signature at the start)",
            zeros.display()
        )
    );
    assert!(started.elapsed().as_secs() < 2, "{:?}", started.elapsed());

    let (data, entries) = sample(true);
    let rec = dir.join("rec.ndr");
    std::fs::write(&rec, &data).unwrap();
    let link = dir.join("link.ndr");
    std::os::unix::fs::symlink(&rec, &link).unwrap();
    for path in [rec, link] {
        let (h, mut r) = open_file(&path).unwrap();
        assert_eq!(h, header());
        let got: Vec<Entry> = r.by_ref().map(|(_, e)| e).collect();
        assert_eq!(got, entries);
        assert!(r.damage().is_empty());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
