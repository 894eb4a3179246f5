// Package demo tells the simtix story on the embedded defaults, for
// `simtix demo` and `make demo`. It writes for a person watching, not for a
// program: scripts use the other commands' --json output.
package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/simtix/simtix/contactless"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/ticketfmt"
)

// DemoSerial is the serial of the demo's card.
const DemoSerial = "89860012345678901234"

// Run tells the story to w.
func Run(ctx context.Context, w io.Writer) error {
	p := &printer{w: w}
	tickets, err := corpus.Tickets()
	if err != nil {
		return err
	}
	issuer, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("issuer key: %w", err)
	}
	keys, err := ticketfmt.NewKeySet(&issuer.PublicKey)
	if err != nil {
		return err
	}
	serial, err := ticketfmt.ParseSerial(DemoSerial)
	if err != nil {
		return err
	}

	p.title("simtix demo: the ticket format")
	p.line("An issuer key is made for this demo (ECDSA P-256), key ID %v.", keys.IDs()[0])

	tk := tickets[0]
	if _, err := rand.Read(tk.ID[:]); err != nil {
		return err
	}
	tk.Carrier = serial
	p.step("1. A ticket from the corpus is issued to card %v", serial)
	p.line("   %s, %v %v, %s, seat %s, %d.%02d", tk.Seller, tk.Date, tk.Time, tk.Instructions, tk.Seat, tk.Price/100, tk.Price%100)

	if err := tk.Sign(issuer); err != nil {
		return err
	}
	enc, err := tk.Marshal()
	if err != nil {
		return err
	}
	p.step("2. Signed and encoded: %d bytes (the reference system spent about 255)", len(enc))
	for off := 0; off < len(enc); off += 32 {
		p.line("   %04x  %s", off, hex.EncodeToString(enc[off:min(off+32, len(enc))]))
	}

	p.step("3. The bytes, field by field")
	fields, err := ticketfmt.Explain(enc)
	if err != nil {
		return err
	}
	p.line("   %-6s %-10s %-30s %s", "offset", "tag+len", "field", "value")
	for _, f := range fields {
		meaning := f.Meaning
		if f.Tag == ticketfmt.TagSignature {
			meaning = hex.EncodeToString(f.Value[:16]) + "... (" + meaning + ")"
		}
		p.line("   %-6d %-10s %-30s %s", f.Offset, spaced(f.Header), f.Name, meaning)
	}

	if err := ctx.Err(); err != nil {
		return err
	}
	p.step("4. Decoded strictly and verified")
	back, err := ticketfmt.Unmarshal(enc)
	if err != nil {
		return err
	}
	if err := back.Verify(keys); err != nil {
		return err
	}
	p.line("   decoded: ticket %v for card %v, re-encodes to the same %d bytes", back.ID, back.Carrier, back.Size())
	p.line("   signature: verified with issuer key %v", back.KeyID)
	tampered := append([]byte(nil), enc...)
	for _, f := range fields {
		if f.Tag == ticketfmt.TagPrice {
			tampered[f.Offset+len(f.Header)+3]-- // the price, one cent less
		}
	}
	if t2, err := ticketfmt.Unmarshal(tampered); err == nil {
		p.line("   a copy with the price one cent lower: %v", t2.Verify(keys))
	}
	tampered = append(enc[:0:0], enc...)
	tampered[2]++ // the template's length
	_, err = ticketfmt.Unmarshal(tampered)
	p.line("   a wrong length: %v", err)

	return methodStory(ctx, p, tickets)
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) title(s string) {
	p.line("%s\n%s", s, strings.Repeat("=", len(s)))
}

func (p *printer) step(format string, args ...any) {
	p.line("")
	p.line(format, args...)
}

func spaced(b []byte) string {
	s := make([]string, len(b))
	for i, c := range b {
		s[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(s, " ")
}

// quietLogger drops the server's log: the story tells what happens.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// timing is the modelled contactless time of a check (docs/contactless.md).
func timing(v gate.Verdict) string {
	m := contactless.DefaultModel(contactless.Rate106)
	return fmt.Sprintf(", modelled %.0f ms at 106 kbit/s", float64(v.Timing(m).Total.Microseconds())/1000)
}
