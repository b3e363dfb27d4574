//! Who we are and whom we know: our long-term identity key (Ed25519, created on first use and
//! kept with 0600 permissions beside the config file), the contacts we paired with (name,
//! public key, first seen; trust on first use, like SSH's known_hosts), the safety number
//! `/verify` shows and the opaque rendezvous room two contacts meet in. Files only here; the
//! handshakes that use these keys are in `proto::keying`.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The file holding our identity key, in the config directory.
pub const IDENTITY_FILE: &str = "identity.key";

/// The file holding our contacts, in the config directory.
pub const CONTACTS_FILE: &str = "contacts.json";

/// Why the identity or the contacts could not be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A file is not what we wrote.
    #[error("{path} is not a p2pchat {what} file: {why} (move it away to start afresh)")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Identity or contacts.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The identity file can be read by others.
    #[error("{path} can be read by other users: run `chmod 600 {path}`")]
    Exposed {
        /// The file.
        path: PathBuf,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> IdentityError + '_ {
    move |source| IdentityError::Io { path: path.to_owned(), source }
}

/// Our long-term identity.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl Identity {
    /// Reads the identity in `dir`, creating a new one (mode 0600) the first time.
    pub fn load_or_create(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(IDENTITY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let mode = fs::metadata(&path).map_err(io_error(&path))?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(IdentityError::Exposed { path });
                }
                let corrupt = |why: &str| IdentityError::Corrupt {
                    path: path.clone(),
                    what: "identity",
                    why: why.to_owned(),
                };
                let bytes = STANDARD.decode(text.trim()).map_err(|_| corrupt("not base64"))?;
                let secret: [u8; 32] =
                    bytes.try_into().map_err(|_| corrupt("not a 32-byte key"))?;
                Ok(Self::from_secret(&secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let identity = Self::from_secret(&rand::random());
                fs::create_dir_all(dir).map_err(io_error(dir))?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io_error(&path))?;
                let text = format!("{}\n", STANDARD.encode(identity.key.to_bytes()));
                file.write_all(text.as_bytes()).map_err(io_error(&path))?;
                Ok(identity)
            }
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    /// The identity with this secret key.
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(secret) }
    }

    /// Our public key.
    pub fn public(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Whether `signature` is `public`'s signature of `message`.
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = VerifyingKey::from_bytes(public) else { return false };
    let Ok(signature) = Signature::from_slice(signature) else { return false };
    key.verify(message, &signature).is_ok()
}

/// The two keys in a fixed order, so both sides compute the same thing.
fn ordered<'k>(a: &'k [u8; 32], b: &'k [u8; 32]) -> [&'k [u8; 32]; 2] {
    if a <= b { [a, b] } else { [b, a] }
}

/// The number both screens show for `/verify`: 20 digits from a hash of both identity keys.
/// Equal numbers mean each side holds the other's real key (nobody was in the middle).
pub fn safety_number(ours: &[u8; 32], theirs: &[u8; 32]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"p2pchat safety number v1");
    for key in ordered(ours, theirs) {
        hash.update(key);
    }
    let digest = hash.finalize();
    digest
        .chunks(4)
        .take(4)
        .map(|c| format!("{:05}", u32::from_be_bytes([c[0], c[1], c[2], c[3]]) % 100_000))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The room two contacts meet in at the server: opaque, the same for both, different for
/// every pair, and nothing the server can turn back into the keys' owners.
pub fn rendezvous_room(ours: &[u8; 32], theirs: &[u8; 32]) -> String {
    let mut hash = Sha256::new();
    hash.update(b"p2pchat rendezvous v1");
    for key in ordered(ours, theirs) {
        hash.update(key);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("rv-{hex}")
}

/// Someone we paired with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The name they gave when pairing (unique among our contacts).
    pub name: String,
    /// Their identity key, base64.
    pub key: String,
    /// The room we meet in at the server (fixed when pairing, so a changed key still finds
    /// us and is caught).
    pub room: String,
    /// When we paired (RFC 3339).
    pub first_seen: String,
    /// The name we paired as (reconnecting by the contact's name uses it again, so they see the
    /// name they know and the server no earlier registration of ours under another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub me: Option<String>,
    /// The rendezvous server we paired through (HOST:PORT), where the messenger looks for
    /// them (`--server` overrides it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl Contact {
    /// Their identity key.
    pub fn public(&self) -> Option<[u8; 32]> {
        STANDARD.decode(&self.key).ok()?.try_into().ok()
    }
}

/// Encodes a public key for a contact record.
pub fn encode_key(public: &[u8; 32]) -> String {
    STANDARD.encode(public)
}

/// What pairing with a code changed in our contacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remembered {
    /// Someone new.
    New,
    /// Someone we knew, with the key we saved: nothing changed (first seen stays).
    Known,
    /// Someone we knew by this key, who now gives another name (first seen stays).
    Renamed {
        /// The name they had.
        previous: String,
    },
    /// A name we knew, with a different identity key than the one saved: the new key replaces
    /// it (pairing by code is how a changed key is accepted).
    KeyChanged {
        /// The key saved before, base64.
        previous: String,
    },
}

/// Our contacts, as saved.
#[derive(Debug, Default)]
pub struct Contacts {
    path: PathBuf,
    /// Everyone, in the order they were added.
    pub list: Vec<Contact>,
}

impl Contacts {
    /// Reads the contacts in `dir` (none yet is an empty list).
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(CONTACTS_FILE);
        let list = read_list(&path, "contacts")?;
        Ok(Self { path, list })
    }

    /// The contact called `name`.
    pub fn find(&self, name: &str) -> Option<&Contact> {
        self.list.iter().find(|c| c.name == name)
    }

    /// Saves a contact we just paired with (by code) and says what that changed. Only a
    /// different identity key is news: pairing again with the same person keeps the record as
    /// it was (when we first met them), even under a new name.
    pub fn remember(&mut self, contact: Contact) -> Result<Remembered, IdentityError> {
        let same_key = self.list.iter().position(|c| c.key == contact.key);
        let same_name = self.list.iter().position(|c| c.name == contact.name);
        let outcome = match (same_key, same_name) {
            (Some(known), _) if self.list[known].name == contact.name => {
                let record = &mut self.list[known];
                if record.room == contact.room
                    && record.me == contact.me
                    && record.server == contact.server
                {
                    return Ok(Remembered::Known);
                }
                record.room = contact.room;
                record.me = contact.me;
                record.server = contact.server;
                Remembered::Known
            }
            // The same person under a new name: one record, renamed, its first meeting kept.
            // A record that held the new name (with another key) gives way to it.
            (Some(known), other) => {
                let record = &mut self.list[known];
                let previous = std::mem::replace(&mut record.name, contact.name);
                record.room = contact.room;
                record.me = contact.me;
                record.server = contact.server;
                if let Some(other) = other {
                    self.list.remove(other); // not `known`: that one had another name
                }
                Remembered::Renamed { previous }
            }
            (None, Some(known)) => {
                let previous = std::mem::replace(&mut self.list[known], contact).key;
                Remembered::KeyChanged { previous }
            }
            (None, None) => {
                self.list.push(contact);
                Remembered::New
            }
        };
        self.save()?;
        Ok(outcome)
    }

    fn save(&self) -> Result<(), IdentityError> {
        write_list(&self.path, &self.list)
    }
}

/// Reads a saved JSON list (none yet is an empty one); `what` names it in errors.
fn read_list<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &'static str,
) -> Result<Vec<T>, IdentityError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| IdentityError::Corrupt {
            path: path.to_owned(),
            what,
            why: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Writes a list readable by its owner only (0600): to a new file first, then renamed over
/// the old, so a crash leaves one or the other whole.
fn write_list<T: Serialize>(path: &Path, list: &[T]) -> Result<(), IdentityError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io_error(dir))?;
    }
    let fresh = path.with_extension("json.new");
    let text = serde_json::to_string_pretty(list).unwrap_or_default();
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&fresh)
        .map_err(io_error(&fresh))?;
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_error(&fresh))?;
    fs::rename(&fresh, path).map_err(io_error(path))
}

/// The file saved rooms are kept in, beside the contacts: it holds their keys, so it is
/// readable by its owner only.
pub const ROOMS_FILE: &str = "rooms.json";

/// A room joined with a shared key in the messenger, rejoined on every start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRoom {
    /// Its name on the server.
    pub name: String,
    /// The rendezvous server (HOST:PORT).
    pub server: String,
    /// Its Fernet key, as `p2pchat keygen` prints it.
    pub key: String,
    /// The name we use in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub me: Option<String>,
}

/// The rooms saved, in the order they were joined.
#[derive(Debug, Default)]
pub struct Rooms {
    path: PathBuf,
    /// Every room.
    pub list: Vec<SavedRoom>,
}

impl Rooms {
    /// Reads the rooms saved in `dir` (none yet is an empty list).
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let path = dir.join(ROOMS_FILE);
        let list = read_list(&path, "rooms")?;
        Ok(Self { path, list })
    }

    /// Forgets the room `name` on `server` (left); false when it was not saved.
    pub fn forget(&mut self, name: &str, server: &str) -> Result<bool, IdentityError> {
        let before = self.list.len();
        self.list.retain(|r| !(r.name == name && r.server == server));
        if self.list.len() == before {
            return Ok(false);
        }
        write_list(&self.path, &self.list).map(|()| true)
    }

    /// Saves `room`, replacing one of the same name on the same server (a new key).
    pub fn remember(&mut self, room: SavedRoom) -> Result<(), IdentityError> {
        match self.list.iter_mut().find(|r| r.name == room.name && r.server == room.server) {
            Some(saved) => *saved = room,
            None => self.list.push(room),
        }
        write_list(&self.path, &self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("p2pchat-id-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn identity_is_created_once_private_and_reloaded() {
        let dir = temp_dir("create");
        let first = Identity::load_or_create(&dir).unwrap();
        let mode = fs::metadata(dir.join(IDENTITY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Identity::load_or_create(&dir).unwrap();
        assert_eq!(first.public(), again.public());
        let signature = first.sign(b"hello");
        assert!(verify(&again.public(), b"hello", &signature));
        assert!(!verify(&again.public(), b"hellO", &signature));
        assert!(!verify(&again.public(), b"hello", &signature[..10]));
        // Readable by others: refused with the fix in the message.
        fs::set_permissions(dir.join(IDENTITY_FILE), fs::Permissions::from_mode(0o644)).unwrap();
        let error = Identity::load_or_create(&dir).err().unwrap().to_string();
        assert!(error.contains("chmod 600"), "{error}");
        fs::write(dir.join(IDENTITY_FILE), "not a key").unwrap();
        fs::set_permissions(dir.join(IDENTITY_FILE), fs::Permissions::from_mode(0o600)).unwrap();
        let error = Identity::load_or_create(&dir).err().unwrap().to_string();
        assert!(error.contains("not a p2pchat identity file"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn safety_numbers_and_rooms_are_symmetric_and_distinct() {
        let (a, b, c) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_ne!(safety_number(&a, &b), safety_number(&a, &c));
        assert_eq!(safety_number(&a, &b).len(), 23);
        assert_eq!(rendezvous_room(&a, &b), rendezvous_room(&b, &a));
        assert_ne!(rendezvous_room(&a, &b), rendezvous_room(&a, &c));
        assert!(rendezvous_room(&a, &b).starts_with("rv-"));
    }

    #[test]
    fn contacts_are_saved_and_a_changed_key_is_reported() {
        let dir = temp_dir("contacts");
        let mut contacts = Contacts::load(&dir).unwrap();
        assert!(contacts.list.is_empty());
        let alice = Contact {
            name: "alice".into(),
            key: encode_key(&[7; 32]),
            room: "rv-1".into(),
            first_seen: "t".into(),
            me: None,
            server: None,
        };
        assert_eq!(contacts.remember(alice.clone()).unwrap(), Remembered::New);
        assert_eq!(contacts.remember(alice.clone()).unwrap(), Remembered::Known);
        let changed = Contact { key: encode_key(&[8; 32]), ..alice.clone() };
        assert_eq!(
            contacts.remember(changed).unwrap(),
            Remembered::KeyChanged { previous: alice.key.clone() }
        );
        let reloaded = Contacts::load(&dir).unwrap();
        assert_eq!(reloaded.list.len(), 1);
        assert_eq!(reloaded.find("alice").unwrap().public(), Some([8; 32]));
        let mode = fs::metadata(dir.join(CONTACTS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rooms_are_saved_private_and_a_new_key_replaces_the_old() {
        let dir = temp_dir("rooms");
        let mut rooms = Rooms::load(&dir).unwrap();
        assert!(rooms.list.is_empty());
        let lobby = SavedRoom {
            name: "lobby".into(),
            server: "127.0.0.1:7777".into(),
            key: "k1".into(),
            me: Some("ann".into()),
        };
        rooms.remember(lobby.clone()).unwrap();
        rooms.remember(SavedRoom { key: "k2".into(), ..lobby.clone() }).unwrap();
        rooms.remember(SavedRoom { server: "127.0.0.1:7778".into(), ..lobby.clone() }).unwrap();
        let reloaded = Rooms::load(&dir).unwrap();
        assert_eq!(reloaded.list.len(), 2);
        assert_eq!(reloaded.list[0].key, "k2");
        let mode = fs::metadata(dir.join(ROOMS_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.join(ROOMS_FILE), "[{").unwrap();
        let error = Rooms::load(&dir).unwrap_err().to_string();
        assert!(error.contains("rooms"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pairing_again_with_the_same_key_is_no_news_and_keeps_first_seen() {
        let dir = temp_dir("repair");
        let mut contacts = Contacts::load(&dir).unwrap();
        let bob = Contact {
            name: "bob".into(),
            key: encode_key(&[5; 32]),
            room: "rv-5".into(),
            first_seen: "2026-01-01T10:00:00+00:00".into(),
            me: Some("ann".into()),
            server: Some("127.0.0.1:7777".into()),
        };
        assert_eq!(contacts.remember(bob.clone()).unwrap(), Remembered::New);
        // Every pairing stamps its own time: a later one is still the same person.
        let later = Contact { first_seen: "2026-06-01T10:00:00+00:00".into(), ..bob.clone() };
        assert_eq!(contacts.remember(later.clone()).unwrap(), Remembered::Known);
        // The same key under a new name: renamed, not a second contact, not a key change.
        let renamed = Contact { name: "robert".into(), ..later };
        assert_eq!(
            contacts.remember(renamed).unwrap(),
            Remembered::Renamed { previous: "bob".into() }
        );
        let reloaded = Contacts::load(&dir).unwrap();
        assert_eq!(reloaded.list.len(), 1);
        let robert = reloaded.find("robert").unwrap();
        assert_eq!(robert.first_seen, bob.first_seen, "first seen never resets");
        assert_eq!(robert.key, bob.key);
        // A name someone else held moves to the key that now proves it; theirs is dropped.
        let mut contacts = reloaded;
        let carol = Contact { name: "carol".into(), key: encode_key(&[6; 32]), ..bob.clone() };
        assert_eq!(contacts.remember(carol).unwrap(), Remembered::New);
        let robert_as_carol = Contact { name: "carol".into(), ..bob.clone() };
        assert_eq!(
            contacts.remember(robert_as_carol).unwrap(),
            Remembered::Renamed { previous: "robert".into() }
        );
        assert_eq!(contacts.list.len(), 1);
        assert_eq!(contacts.find("carol").unwrap().key, bob.key);
        fs::remove_dir_all(&dir).unwrap();
    }
}
