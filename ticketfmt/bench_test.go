package ticketfmt_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"testing"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/ticketfmt"
)

// benchCorpus signs every corpus ticket and returns them with their
// encodings and the verifying key set.
func benchCorpus(b *testing.B) ([]ticketfmt.Ticket, [][]byte, *ecdsa.PrivateKey, *ticketfmt.KeySet) {
	b.Helper()
	ts, err := corpus.Tickets()
	if err != nil {
		b.Fatal(err)
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := ticketfmt.NewKeySet(&k.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	encs := make([][]byte, len(ts))
	for i := range ts {
		ts[i].ID[9] = byte(i)
		if err := ts[i].Sign(k); err != nil {
			b.Fatal(err)
		}
		if encs[i], err = ts[i].Marshal(); err != nil {
			b.Fatal(err)
		}
	}
	return ts, encs, k, keys
}

// reportCorpus reports the corpus's bytes per ticket and how many of its
// tickets a default card holds at the applet's per-record overhead.
func reportCorpus(b *testing.B, encs [][]byte) {
	sizes := make([]int, len(encs))
	sum := 0
	for i, e := range encs {
		sizes[i] = len(e)
		sum += len(e)
	}
	b.ReportMetric(float64(sum)/float64(len(encs)), "bytes/ticket")
	b.ReportMetric(float64(applet.Fit(sizes, applet.DefaultCapacity, applet.DefaultMaxTickets)), "tickets/2KB")
}

func BenchmarkMarshal(b *testing.B) {
	ts, encs, _, _ := benchCorpus(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ts[i%len(ts)].Marshal(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportCorpus(b, encs)
}

func BenchmarkUnmarshal(b *testing.B) {
	_, encs, _, _ := benchCorpus(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := ticketfmt.Unmarshal(encs[i%len(encs)]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSign(b *testing.B) {
	ts, _, k, _ := benchCorpus(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := ts[i%len(ts)].Sign(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	ts, _, _, keys := benchCorpus(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := ts[i%len(ts)].Verify(keys); err != nil {
			b.Fatal(err)
		}
	}
}

// Baselines, measured in the same run: the same tickets through
// encoding/json, and bare ECDSA over the same bytes. docs/benchmarks.md
// reports the format's figures as ratios to these.

func BenchmarkBaselineJSONMarshal(b *testing.B) {
	ts, _, _, _ := benchCorpus(b)
	sum := 0
	for i := range ts {
		out, err := json.Marshal(&ts[i])
		if err != nil {
			b.Fatal(err)
		}
		sum += len(out)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := json.Marshal(&ts[i%len(ts)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(sum)/float64(len(ts)), "bytes/ticket")
}

func BenchmarkBaselineJSONUnmarshal(b *testing.B) {
	ts, _, _, _ := benchCorpus(b)
	docs := make([][]byte, len(ts))
	for i := range ts {
		var err error
		if docs[i], err = json.Marshal(&ts[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		var t ticketfmt.Ticket
		if err := json.Unmarshal(docs[i%len(docs)], &t); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineECDSASign(b *testing.B) {
	ts, _, k, _ := benchCorpus(b)
	tbs, err := ts[0].MarshalUnsigned()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := sha256.Sum256(tbs)
		if _, err := ecdsa.SignASN1(rand.Reader, k, d[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaselineECDSAVerify(b *testing.B) {
	ts, _, k, _ := benchCorpus(b)
	tbs, err := ts[0].MarshalUnsigned()
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d := sha256.Sum256(tbs)
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
			b.Fatal("does not verify")
		}
	}
}
