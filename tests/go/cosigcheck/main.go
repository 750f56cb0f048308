// Command cosigcheck checks a cosigned checkpoint with code that is not Logbook's: the signed
// note is opened by golang.org/x/mod/sumdb/note (the reference implementation of C2SP
// signed-note), with the log's key and a cosignature/v1 verifier written here from the C2SP
// tlog-cosignature text with nothing but the Go standard library.
//
//	cosigcheck -log LOG_VKEY -witness WITNESS_VKEY [-witness …] < note
//
// It prints "ok" and exits 0 when the log's signature and every witness's cosignature are
// present and valid; otherwise it names what failed and exits 1. Build it in GOPATH mode with
// GOPATH including /usr/share/gocode (Debian's golang-golang-x-mod-dev), GO111MODULE=off.
package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// cosigV1 verifies Ed25519 cosignatures (signature type 0x04).
type cosigV1 struct {
	name string
	hash uint32
	pub  ed25519.PublicKey
	// seen records the timestamp of the last signature checked, for the report.
	seen *uint64
}

func (v cosigV1) Name() string    { return v.name }
func (v cosigV1) KeyHash() uint32 { return v.hash }

// Verify checks sig = timestamp (8 bytes, big-endian) || Ed25519 signature (64 bytes) over
// "cosignature/v1\ntime <timestamp>\n" followed by the note text.
func (v cosigV1) Verify(msg, sig []byte) bool {
	if len(sig) != 8+ed25519.SignatureSize {
		return false
	}
	t := binary.BigEndian.Uint64(sig[:8])
	if t > 1<<63-1 {
		return false
	}
	var m bytes.Buffer
	m.WriteString("cosignature/v1\n")
	m.WriteString("time " + strconv.FormatUint(t, 10) + "\n")
	m.Write(msg)
	if !ed25519.Verify(v.pub, m.Bytes(), sig[8:]) {
		return false
	}
	*v.seen = t
	return true
}

// newCosigV1 parses a verifier key name+hash+base64(0x04 || 32-byte key) and checks its hash:
// the first four bytes of SHA-256(name || "\n" || 0x04 || key).
func newCosigV1(vkey string) (cosigV1, error) {
	parts := strings.SplitN(vkey, "+", 3)
	if len(parts) != 3 || len(parts[1]) != 8 {
		return cosigV1{}, errors.New("malformed witness key")
	}
	name := parts[0]
	hash, err := strconv.ParseUint(parts[1], 16, 32)
	if err != nil {
		return cosigV1{}, errors.New("malformed witness key hash")
	}
	key, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil || len(key) != 1+ed25519.PublicKeySize || key[0] != 0x04 {
		return cosigV1{}, errors.New("witness key is not an Ed25519 cosignature/v1 key")
	}
	h := sha256.New()
	h.Write([]byte(name))
	h.Write([]byte("\n"))
	h.Write(key)
	if binary.BigEndian.Uint32(h.Sum(nil)[:4]) != uint32(hash) {
		return cosigV1{}, errors.New("witness key hash does not match its name and key")
	}
	return cosigV1{name: name, hash: uint32(hash), pub: ed25519.PublicKey(key[1:]), seen: new(uint64)}, nil
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

func main() {
	logKey := flag.String("log", "", "the log's note verifier key")
	var witnesses list
	flag.Var(&witnesses, "witness", "a witness's cosignature/v1 verifier key (repeatable)")
	flag.Parse()
	if err := run(*logKey, witnesses, os.Stdin); err != nil {
		fmt.Println("refused:", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func run(logKey string, witnesses []string, in io.Reader) error {
	msg, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	logV, err := note.NewVerifier(logKey)
	if err != nil {
		return fmt.Errorf("log key: %v", err)
	}
	verifiers := []note.Verifier{logV}
	var cosigners []cosigV1
	for _, w := range witnesses {
		v, err := newCosigV1(w)
		if err != nil {
			return err
		}
		cosigners = append(cosigners, v)
		verifiers = append(verifiers, v)
	}
	n, err := note.Open(msg, note.VerifierList(verifiers...))
	if err != nil {
		return fmt.Errorf("note.Open: %v", err)
	}
	found := map[string]bool{}
	for _, s := range n.Sigs {
		found[fmt.Sprintf("%s+%08x", s.Name, s.Hash)] = true
	}
	if !found[fmt.Sprintf("%s+%08x", logV.Name(), logV.KeyHash())] {
		return errors.New("no signature by the log")
	}
	for _, c := range cosigners {
		if !found[fmt.Sprintf("%s+%08x", c.name, c.hash)] {
			return fmt.Errorf("no cosignature by %s", c.name)
		}
		fmt.Printf("cosigned by %s at %d\n", c.name, *c.seen)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 {
		return errors.New("not a checkpoint")
	}
	if _, err := strconv.ParseUint(lines[1], 10, 64); err != nil {
		return errors.New("not a checkpoint: size")
	}
	if h, err := base64.StdEncoding.DecodeString(lines[2]); err != nil || len(h) != 32 {
		return errors.New("not a checkpoint: root")
	}
	return nil
}
