// Package issuer holds the network side's keys and secrets in its data
// directory: the issuer signing key (a PEM file or a TPM), the card master
// secret and the access tokens. It does not issue tickets or certify cards:
// the ticket center does, with the crypto.Signer it gets from here.
//
// # Files in the data directory
//
//	master.key          0600  the card master secret: 64 hex digits and a newline
//	                          (what simtix card new --master-key reads)
//	operator.token      0600  the operators' token: 64 hex digits (32 random bytes)
//	gate.token          0600  the gates' token: 64 hex digits (32 random bytes)
//	issuer-key.pem      0600  the first issuer key of the default source (PKCS#8)
//	issuer-key-N.pem    0600  the N-th one, made by a rotation (N = 2, 3, ...)
//	tpm-sim.seed        0600  the TPM simulator's seed (tpm:sim only)
//	issuer-keys.json    0644  the key record: every issuer key ever used, oldest
//	                          first; the last one is current, the others retired
//	issuer-keys.pem     0644  the issuer public keys for gates, rewritten from
//	                          the record at every Open and Rotate
//
// Open creates what is missing (the directory itself with 0700). Secrets are
// created with a temporary file and a hard link, so a secret is either
// complete or absent and an existing one is never overwritten. It refuses to
// start, with an error naming the file and what to do, when a file exists but
// is malformed, when a secret or private key file grants any permission to
// group or other (as OpenSSH does for private keys: chmod 600), and when the
// data directory or the key record is writable by group or other.
//
// # Issuer keys and rotation
//
// The key record (issuer-keys.json) is the authority on which keys exist: an
// append-only list of public keys with where each one's private half lives.
// Retired keys stay in it, and in every KeySet and issuer-keys.pem (PEM
// blocks in ascending key ID order, as ticketfmt.KeySet.MarshalPEM writes
// them), so that what they signed still verifies; a retired key never becomes
// current again. Retired private key files are left on disk and are not
// needed any more: an operator may delete them.
//
// The key spec given to Open chooses where the current key lives:
//
//   - "" (the default): key files in the data directory, made by Open on
//     first start and by Rotate. A P-256 key placed at issuer-key.pem before
//     the first start is used instead of a new one.
//   - "PATH" or "file:PATH": the EC P-256 private key in that PEM file
//     ("EC PRIVATE KEY" or PKCS#8 "PRIVATE KEY"), which must exist. Rotate
//     refuses: make a new file and restart with it.
//   - "tpm:DEVICE" (such as tpm:/dev/tpmrm0): an ECDSA P-256 signing key in
//     the TPM's owner hierarchy, which must have an empty authorization.
//   - "tpm:sim": the same in the go-tpm-tools TPM simulator (for tests; cgo).
//
// When the spec names another place than the current key's, its key becomes
// current and the previous one is retired, as by a rotation: so an operator
// moves the issuer key into a TPM by restarting with --issuer-key tpm:...,
// and every ticket signed before still verifies.
//
// A TPM key is never stored: it is a primary key, derived again at each Open
// from the TPM's owner seed and a template (the default ECC attestation key
// template of go-tpm-tools, unrestricted so that it signs any digest, with
// the unique field set to SHA-256 of "simtix issuer key N"). Rotation takes
// the next N; the record keeps N and the public key, and Open refuses to
// start when the TPM derives another key (its owner hierarchy was cleared, or
// it is another TPM). The simulator forgets everything when it stops, so
// tpm:sim keeps a random seed in tpm-sim.seed and starts the simulator with
// simulator.GetWithFixedSeedInsecure: the key is only as secret as that file
// (a 64-bit seed, insecure by design), which is fine for tests and demos and
// nothing else. The simulator is one per process: a second Keys on tpm:sim
// waits in Open (until its context ends) for the first to be closed.
//
// # Concurrency
//
// Keys and its signers are safe for concurrent use; TPM commands are
// serialised. A signer from Signer signs with the key that was current when
// it was obtained, and fails with ErrRetired after a Rotate (so a ticket's key
// ID always names the key that signed it): ask for Signer per signing. One
// process at a time may use a data directory.
package issuer
