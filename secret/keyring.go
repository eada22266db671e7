package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// MinMasterLen is the shortest master secret accepted: 32 random bytes.
const MinMasterLen = 32

// Errors returned by the Keyring.
var (
	ErrUnknownKey = errors.New("secret: ciphertext was sealed under a key this keyring does not hold")
	ErrCorrupt    = errors.New("secret: ciphertext is malformed or was tampered with")
)

// Keyring derives every key the app needs from the master secret
// (APP_SECRET) with HKDF, one key per purpose, so a leak of one derived key
// (say, the cookie key) exposes nothing else. The first master is current:
// new ciphertexts, hashes and signatures use it. Older masters
// (APP_SECRET_PREVIOUS) stay readable so a rotation never locks data out.
type Keyring struct {
	sets []keySet
}

type keySet struct {
	id     string      // short public key id, stored next to each ciphertext
	aead   cipher.AEAD // token encryption at rest
	hash   []byte      // keyed hashes of application tokens
	master []byte      // kept only to derive purpose keys on demand
}

// ParseMaster decodes a master secret given as hex or base64 (standard or
// URL alphabet, padded or not) and checks it holds at least 32 bytes.
func ParseMaster(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("is empty")
	}
	var b []byte
	if h, err := hex.DecodeString(s); err == nil {
		b = h
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if d, err := enc.DecodeString(s); err == nil {
				b = d
				break
			}
		}
	}
	if b == nil {
		return nil, errors.New("is neither hex nor base64")
	}
	if len(b) < MinMasterLen {
		return nil, fmt.Errorf("holds %d bytes, needs at least %d", len(b), MinMasterLen)
	}
	return b, nil
}

// NewKeyring builds a keyring from the current master and any previous ones.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	k := &Keyring{}
	for i, m := range append([][]byte{current}, previous...) {
		if len(m) < MinMasterLen {
			return nil, fmt.Errorf("secret: master %d holds %d bytes, needs at least %d", i, len(m), MinMasterLen)
		}
		set, err := newKeySet(m)
		if err != nil {
			return nil, err
		}
		for _, s := range k.sets {
			if s.id == set.id {
				return nil, errors.New("secret: the previous master equals the current one")
			}
		}
		k.sets = append(k.sets, set)
	}
	return k, nil
}

func newKeySet(master []byte) (keySet, error) {
	m := append([]byte(nil), master...)
	encKey := derive(m, "token-encryption", 32)
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return keySet{}, err
	}
	// A random 96-bit nonce per message: far below the 2^32 messages per
	// key that GCM tolerates for the token volumes of this app.
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return keySet{}, err
	}
	return keySet{
		id:     hex.EncodeToString(derive(m, "key-id", 4)),
		aead:   aead,
		hash:   derive(m, "application-token-hash", 32),
		master: m,
	}, nil
}

// derive runs HKDF-SHA256 with a purpose label as info. The master is
// already high-entropy, so no salt is needed (RFC 5869 section 3.1).
func derive(master []byte, purpose string, n int) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, "leadcontacts/"+purpose, n)
	if err != nil {
		// Only possible for absurd lengths, which this package never asks for.
		panic(err)
	}
	return k
}

// KeyID returns the id of the current key, as written into new ciphertexts.
func (k *Keyring) KeyID() string { return k.sets[0].id }

// Seal encrypts a secret for storage. aad binds the ciphertext to where it
// is stored (table, row key, column): a ciphertext copied into another row
// or column fails to open instead of handing out another portal's token.
// The result reads "v1:<key id>:<base64>".
func (k *Keyring) Seal(plain String, aad string) string {
	if plain.IsZero() {
		return ""
	}
	cur := k.sets[0]
	// #nosec G407 -- cipher.NewGCMWithRandomNonce draws a fresh random nonce on every Seal; nil is the nonce argument it requires.
	ct := cur.aead.Seal(nil, nil, []byte(plain.Reveal()), []byte(aad))
	return "v1:" + cur.id + ":" + base64.RawStdEncoding.EncodeToString(ct)
}

// Open decrypts what Seal produced with the same aad. An empty input opens
// to an empty secret (a wiped column).
func (k *Keyring) Open(sealed, aad string) (String, error) {
	if sealed == "" {
		return String{}, nil
	}
	parts := strings.SplitN(sealed, ":", 3)
	if len(parts) != 3 || parts[0] != "v1" {
		return String{}, ErrCorrupt
	}
	set, ok := k.set(parts[1])
	if !ok {
		return String{}, ErrUnknownKey
	}
	ct, err := base64.RawStdEncoding.DecodeString(parts[2])
	if err != nil {
		return String{}, ErrCorrupt
	}
	pt, err := set.aead.Open(nil, nil, ct, []byte(aad))
	if err != nil {
		return String{}, ErrCorrupt
	}
	return New(string(pt)), nil
}

// NeedsReseal reports whether a stored ciphertext was sealed under an older
// key, so a background job (or the next write) can re-encrypt it.
func (k *Keyring) NeedsReseal(sealed string) bool {
	parts := strings.SplitN(sealed, ":", 3)
	return len(parts) == 3 && parts[1] != k.sets[0].id
}

// Hash returns a keyed hash of a value that is only ever compared, never
// used (the Bitrix24 application_token). A database leak then does not let
// anyone forge events. The result reads "h1:<key id>:<hex>".
func (k *Keyring) Hash(v String) string {
	if v.IsZero() {
		return ""
	}
	cur := k.sets[0]
	return "h1:" + cur.id + ":" + hex.EncodeToString(mac(cur.hash, v.Reveal()))
}

// Verify compares a presented value with a stored Hash in constant time.
// An empty value or an empty stored hash never matches, so a portal whose
// token was wiped cannot be reached with an empty token.
func (k *Keyring) Verify(v String, stored string) bool {
	if v.IsZero() || stored == "" {
		return false
	}
	parts := strings.SplitN(stored, ":", 3)
	if len(parts) != 3 || parts[0] != "h1" {
		return false
	}
	set, ok := k.set(parts[1])
	if !ok {
		return false
	}
	want, err := hex.DecodeString(parts[2])
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(mac(set.hash, v.Reveal()), want) == 1
}

// CanVerify reports whether a stored hash can be checked at all: it is
// non-empty and made with a key this keyring still has. A hash made under
// a retired master can neither match nor be told apart from a forgery.
func (k *Keyring) CanVerify(stored string) bool {
	parts := strings.SplitN(stored, ":", 3)
	if len(parts) != 3 || parts[0] != "h1" {
		return false
	}
	_, ok := k.set(parts[1])
	return ok
}

// HashIsCurrent reports whether a stored hash was made with the current key.
func (k *Keyring) HashIsCurrent(stored string) bool {
	parts := strings.SplitN(stored, ":", 3)
	return len(parts) == 3 && parts[1] == k.sets[0].id
}

// Pairs returns hash/encryption key pairs for a purpose, current first, in
// the layout securecookie.CodecsFromPairs and sessions.NewCookieStore
// expect: signing keys of 32 bytes, AES-256 encryption keys.
func (k *Keyring) Pairs(purpose string) [][]byte {
	var out [][]byte
	for _, s := range k.sets {
		out = append(out, derive(s.master, purpose+"/mac", 32), derive(s.master, purpose+"/enc", 32))
	}
	return out
}

// Lookup returns a deterministic one-way digest of a high-entropy value
// (a 256-bit random frame session id) for use as a database key, so the
// raw id never sits in the database. It is deliberately not keyed: for a
// 256-bit random input a plain SHA-256 is already irreversible, and a key
// would tie every open session to the current master, so a rotation
// would end them all. Never use it for low-entropy values (use Hash).
func (k *Keyring) Lookup(v string) string {
	sum := sha256.Sum256([]byte("leadcontacts/session-lookup\x00" + v))
	return hex.EncodeToString(sum[:])
}

func (k *Keyring) set(id string) (keySet, bool) {
	for _, s := range k.sets {
		if s.id == id {
			return s, true
		}
	}
	return keySet{}, false
}

func mac(key []byte, v string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(v))
	return h.Sum(nil)
}
