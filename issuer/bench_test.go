package issuer_test

import (
	"testing"
)

// BenchmarkSign signs a ticket with a key file and with a key in the TPM
// simulator (closed at the end of each sub-benchmark: one simulator per
// process).
func BenchmarkSign(b *testing.B) {
	for _, spec := range []string{"", "tpm:sim"} {
		name := "file"
		if spec != "" {
			name = spec
		}
		b.Run(name, func(b *testing.B) {
			k := open(b, b.TempDir(), spec)
			tk := unsigned(1)
			for b.Loop() {
				if err := tk.Sign(k.Signer()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
