//! tracefs: where it is (mounting it if needed) and what a tracepoint's raw
//! record looks like on this kernel, from `events/<system>/<event>/format`.
//!
//! Field offsets differ between kernels (kfree_skb's `reason` is at 28 on 6.1 and
//! at 36 on 6.12+; 5.10 has none), so they are always read from here.

use std::{
    fs, io,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TracefsError {
    #[error("tracefs is not mounted and cannot be mounted at {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("--tracefs {path}: not a tracefs mount (no {path}/events directory)")]
    NotTracefs { path: PathBuf },
    #[error("tracepoint {system}:{event} not found on this kernel (no {path})")]
    Missing {
        system: String,
        event: String,
        path: PathBuf,
    },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot parse {what}: {line:?}")]
    Parse { what: String, line: String },
}

/// A located tracefs root.
///
/// Where netdrop has to mount tracefs itself, it does so in a mount namespace
/// of its own (the calling thread's, made private): the host never sees the
/// mount, and it goes away with netdrop however netdrop ends (SIGKILL too).
/// tracefs is only needed to start (format files, tracepoint ids at attach):
/// [`Tracefs::leave`] then returns to the host's mount namespace, and the
/// private one, with its mount, is gone.
#[derive(Debug, Clone)]
pub struct Tracefs {
    pub root: PathBuf,
    /// We mounted it (in our private mount namespace, or, where that could
    /// not be made, in the host's: then [`Tracefs::leave`] unmounts it).
    pub mounted_by_us: bool,
    /// The mount namespace to return to, while netdrop is in its private one.
    home: Arc<Mutex<Option<OwnedFd>>>,
}

const DEFAULT_ROOTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

impl Tracefs {
    /// Uses `explicit` as is, else the first mounted default root, else mounts
    /// tracefs at /sys/kernel/tracing.
    pub fn locate(explicit: Option<&Path>) -> Result<Tracefs, TracefsError> {
        let found = |root: PathBuf| Tracefs {
            root,
            mounted_by_us: false,
            home: Arc::default(),
        };
        if let Some(root) = explicit {
            if !root.join("events").is_dir() {
                return Err(TracefsError::NotTracefs {
                    path: root.to_path_buf(),
                });
            }
            return Ok(found(root.to_path_buf()));
        }
        for root in DEFAULT_ROOTS {
            if Path::new(root).join("events").is_dir() {
                return Ok(found(root.into()));
            }
        }
        let root = PathBuf::from(DEFAULT_ROOTS[0]);
        // A private mount namespace first; where it cannot be made, the
        // host's (and `leave` unmounts).
        let home = if crate::privileges::can_use_private_mount_ns() {
            enter_private_mount_ns().ok()
        } else {
            None
        };
        if let Err(source) = mount_tracefs(&root) {
            if let Some(home) = home {
                return_home(&home);
            }
            return Err(TracefsError::Mount { path: root, source });
        }
        Ok(Tracefs {
            root,
            mounted_by_us: true,
            home: Arc::new(Mutex::new(home)),
        })
    }

    /// Done with tracefs (everything attached): back to the host's mount
    /// namespace, which drops the private one and its tracefs mount; or, if
    /// tracefs was mounted in the host's, unmounts it. Idempotent.
    pub fn leave(&self) {
        let home = self.home.lock().map(|mut h| h.take()).unwrap_or(None);
        match home {
            Some(home) => return_home(&home),
            None => self.release(),
        }
    }

    /// The raw record layout of `system:event`.
    pub fn format(&self, system: &str, event: &str) -> Result<TracepointFormat, TracefsError> {
        let path = self
            .root
            .join("events")
            .join(system)
            .join(event)
            .join("format");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TracefsError::Missing {
                    system: system.into(),
                    event: event.into(),
                    path,
                });
            }
            Err(source) => return Err(TracefsError::Read { path, source }),
        };
        TracepointFormat::parse(&text)
    }

    /// Unmounts tracefs if this process mounted it in the host's mount
    /// namespace (not needed for a private one: it goes with netdrop).
    fn release(&self) {
        if self.mounted_by_us
            && let Ok(c) = std::ffi::CString::new(self.root.as_os_str().as_encoded_bytes())
        {
            // SAFETY: plain syscall with a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Moves the calling thread into a new mount namespace whose mounts do not
/// propagate to the host's; returns the host's, to come back to.
fn enter_private_mount_ns() -> io::Result<OwnedFd> {
    let home: OwnedFd = fs::File::open("/proc/thread-self/ns/mnt")?.into();
    // SAFETY: plain syscalls; unshare(CLONE_NEWNS) affects this thread only
    // (its fs_struct is copied if shared).
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(io::Error::last_os_error());
        }
        let rc = libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        if rc != 0 {
            let e = io::Error::last_os_error();
            return_home(&home);
            return Err(e);
        }
    }
    Ok(home)
}

/// setns back to `home`. The kernel refuses while another thread shares this
/// thread's fs_struct (EINVAL): a thread that just exited may still hold it
/// for a moment, so it tries again briefly.
fn return_home(home: &OwnedFd) {
    for _ in 0..200 {
        // SAFETY: `home` is an open nsfs file of a mount namespace.
        if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNS) } == 0 {
            return;
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(
        "could not return to the host's mount namespace: {}",
        io::Error::last_os_error()
    );
}

fn mount_tracefs(root: &Path) -> io::Result<()> {
    fs::create_dir_all(root)?;
    let target = std::ffi::CString::new(root.as_os_str().as_encoded_bytes())?;
    let fstype = c"tracefs";
    // SAFETY: valid C strings; no data argument.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// The C type as printed, e.g. `void *`, `enum skb_drop_reason`, `__data_loc char[]`.
    pub ty: String,
    pub offset: u32,
    pub size: u32,
    pub signed: bool,
}

/// A parsed tracepoint format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracepointFormat {
    pub name: String,
    pub id: u32,
    pub fields: Vec<Field>,
}

impl TracepointFormat {
    pub fn parse(text: &str) -> Result<TracepointFormat, TracefsError> {
        let bad = |what: &str, line: &str| TracefsError::Parse {
            what: what.into(),
            line: line.into(),
        };
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("ID:") {
                id = Some(v.trim().parse().map_err(|_| bad("tracepoint ID", line))?);
            } else if line.starts_with("field:") {
                fields.push(parse_field(line).ok_or_else(|| bad("format field", line))?);
            }
        }
        let name = name.ok_or_else(|| bad("format file", "no name: line"))?;
        if fields.is_empty() {
            return Err(bad("format file", "no field: lines"));
        }
        Ok(TracepointFormat {
            name,
            id: id.unwrap_or(0),
            fields,
        })
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field's offset, or `netdrop_common::ABSENT` if this kernel lacks it.
    pub fn offset(&self, name: &str) -> u32 {
        self.field(name)
            .map_or(netdrop_common::ABSENT, |f| f.offset)
    }
}

/// `field:unsigned short protocol;\toffset:32;\tsize:2;\tsigned:0;`
fn parse_field(line: &str) -> Option<Field> {
    let mut parts = line.split(';').map(str::trim);
    let decl = parts.next()?.strip_prefix("field:")?.trim();
    let mut offset = None;
    let mut size = None;
    let mut signed = false;
    for p in parts {
        if let Some(v) = p.strip_prefix("offset:") {
            offset = v.trim().parse().ok();
        } else if let Some(v) = p.strip_prefix("size:") {
            size = v.trim().parse().ok();
        } else if let Some(v) = p.strip_prefix("signed:") {
            signed = v.trim() == "1";
        }
    }
    // The name is the last identifier of the declaration, before any `[N]`.
    let split = decl.rfind([' ', '*'])?;
    let (ty, raw_name) = decl.split_at(split + 1);
    let name = raw_name.split('[').next()?.trim();
    let mut ty = ty.trim().to_string();
    if let Some(dims) = raw_name.find('[') {
        ty.push_str(&raw_name[dims..]);
    }
    if name.is_empty() {
        return None;
    }
    Some(Field {
        name: name.into(),
        ty,
        offset: offset?,
        size: size?,
        signed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netdrop_common::ABSENT;

    fn fixture(name: &str) -> TracepointFormat {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/formats")
            .join(name);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TracepointFormat::parse(&text).unwrap()
    }

    #[test]
    fn kfree_skb_offsets_differ_by_kernel() {
        // (file, skbaddr, location, rx_sk, protocol, reason)
        let cases = [
            (
                "kfree_skb.5.10.0-46-amd64.format",
                8,
                16,
                ABSENT,
                24,
                ABSENT,
            ),
            ("kfree_skb.6.1.0-56-amd64.format", 8, 16, ABSENT, 24, 28),
            ("kfree_skb.6.12.117+deb13-amd64.format", 8, 16, 24, 32, 36),
            ("kfree_skb.6.18.44-fc-v769.format", 8, 16, 24, 32, 36),
            ("kfree_skb.7.2.13+deb14-amd64.format", 8, 16, 24, 32, 36),
        ];
        for (file, skb, loc, rx, proto, reason) in cases {
            let f = fixture(file);
            assert_eq!(f.name, "kfree_skb", "{file}");
            let got = [
                f.offset("skbaddr"),
                f.offset("location"),
                f.offset("rx_sk"),
                f.offset("protocol"),
                f.offset("reason"),
            ];
            assert_eq!(got, [skb, loc, rx, proto, reason], "{file}");
        }
    }

    #[test]
    fn types_and_arrays_are_parsed() {
        let f = fixture("neigh_create.6.18.44-fc-v769.format");
        assert_eq!(f.id, 2249);
        let dev = f.field("dev").unwrap();
        assert_eq!(
            (dev.ty.as_str(), dev.offset, dev.size),
            ("__data_loc char[]", 12, 4)
        );
        let key = f.field("primary_key4").unwrap();
        assert_eq!((key.ty.as_str(), key.offset, key.size), ("u8[4]", 22, 4));
        assert_eq!(f.offset("created"), 20);
        assert!(f.field("entries").unwrap().signed);
        let k = fixture("kfree_skb.7.2.13+deb14-amd64.format");
        assert_eq!(k.field("rx_sk").unwrap().ty, "const void *");
        assert_eq!(k.field("reason").unwrap().ty, "enum skb_drop_reason");
    }

    #[test]
    fn neighbour_state_offsets_from_the_format_files() {
        let u = crate::kernel::neigh_state_offsets(&fixture("neigh_update.6.18.44-fc-v769.format"));
        // (family, dev, nud_state, new_state, dead, primary_key4, primary_key6)
        assert_eq!(
            (
                u.family,
                u.dev,
                u.nud_state,
                u.new_state,
                u.dead,
                u.primary_key4,
                u.primary_key6
            ),
            (8, 12, 50, 136, 52, 60, 64)
        );
        let t = crate::kernel::neigh_state_offsets(&fixture(
            "neigh_timer_handler.6.18.44-fc-v769.format",
        ));
        assert_eq!(
            (
                t.family,
                t.dev,
                t.nud_state,
                t.new_state,
                t.dead,
                t.primary_key4,
                t.primary_key6
            ),
            (8, 12, 50, ABSENT, 52, 60, 64)
        );
        // A field whose size is not what the probe reads is not used.
        let text =
            "name: neigh_update\nformat:\n\tfield:u32 nud_state;\toffset:50;\tsize:4;\tsigned:0;\n";
        let odd = crate::kernel::neigh_state_offsets(&TracepointFormat::parse(text).unwrap());
        assert_eq!((odd.nud_state, odd.family), (ABSENT, ABSENT));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in [
            "",
            "name: x\n",
            "name: x\nformat:\n\tfield:int a;\toffset:zz;\tsize:4;\n",
            "\u{0}\u{1}field:",
        ] {
            assert!(TracepointFormat::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn missing_tracepoint_names_itself() {
        let dir =
            std::env::temp_dir().join(format!("netdrop-empty-tracefs-{}", std::process::id()));
        // Not a tracefs: the error is about the path given.
        fs::create_dir_all(&dir).unwrap();
        let err = Tracefs::locate(Some(&dir)).unwrap_err().to_string();
        assert!(
            err.contains(&format!("--tracefs {}: not a tracefs", dir.display())),
            "{err}"
        );
        // A tracefs without the tracepoint names the tracepoint.
        fs::create_dir_all(dir.join("events")).unwrap();
        let t = Tracefs::locate(Some(&dir)).unwrap();
        let err = t.format("skb", "kfree_skb").unwrap_err().to_string();
        assert!(err.contains("skb:kfree_skb"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
