package demo

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/cardkeys"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/internal/cardview"
	"github.com/simtix/simtix/ticketfmt"
)

// cardStory personalises a 2 KB card, stores the corpus on it until it is
// full, checks a ticket at a gate and fetches the card's notification.
func cardStory(ctx context.Context, p *printer, tickets []ticketfmt.Ticket, issuer *ecdsa.PrivateKey, issuerKeys *ticketfmt.KeySet) error {
	p.title("\nThe card: a SIM with 2 KB for tickets")
	master := make([]byte, cardkeys.KeySize)
	if _, err := rand.Read(master); err != nil {
		return err
	}
	serial, err := ticketfmt.ParseSerial(DemoSerial)
	if err != nil {
		return err
	}
	keys, err := cardkeys.Derive(master, serial)
	if err != nil {
		return err
	}
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: master})
	if err != nil {
		return err
	}
	card, err := emulator.New(ram, emulator.Options{})
	if err != nil {
		return err
	}
	handset := &reader{ctx: ctx, p: p, port: card.Port(applet.Contact), who: "handset"}
	gate := &reader{ctx: ctx, p: p, port: card.Port(applet.Contactless), who: "gate   "}
	for _, r := range []*reader{handset, gate} {
		atr, err := r.port.PowerOn(ctx)
		if err != nil {
			return err
		}
		p.line("The %s's reader powers the card on: ATR %X", strings.TrimSpace(r.who), atr)
	}

	p.step("6. The handset selects the ticket applet, sends TERMINAL PROFILE and begins a sync")
	handset.send("SELECT", cardproto.SelectNoFCI())
	handset.send("TERMINAL PROFILE", cardproto.TerminalProfile(cardproto.DefaultProfile))
	var challenge [cardkeys.ChallengeSize]byte
	if _, err := rand.Read(challenge[:]); err != nil {
		return err
	}
	answer, err := cardproto.ParseSync(handset.send("BEGIN SYNC", cardproto.BeginSync(challenge)))
	if err != nil {
		return err
	}
	if err := answer.Verify(keys, challenge[:]); err != nil {
		return err
	}
	p.line("   the card's answer verifies with K_auth: epoch %d, counter %d", answer.Status.Epoch, answer.Status.Counter)
	if err := draw(p, card); err != nil {
		return err
	}

	p.step("7. Corpus tickets are issued to the card and stored until it answers \"not enough memory\"")
	auth := cardkeys.Authorisation{Epoch: answer.Status.Epoch, Counter: answer.Status.Counter}
	var first *ticketfmt.Ticket
	for n := range tickets {
		t := tickets[n]
		copy(t.ID[:], fmt.Sprintf("DEMO%06d", n+1))
		t.Carrier = serial
		if err := t.Sign(issuer); err != nil {
			return err
		}
		raw, err := t.Marshal()
		if err != nil {
			return err
		}
		r := handset.try(cardproto.Store(raw, auth, cardkeys.StoreMAC(keys, serial, auth, raw)))
		p.line("   STORE %v  %3d bytes  %-26s → %v", t.ID, len(raw), cardview.Truncate(t.Seller, 26), r.SW)
		if r.SW == apdu.SWNotEnoughMemory {
			p.line("   the card is full: %d tickets on it; the other %d will wait in the virtual ticket box", n, len(tickets)-n)
			break
		}
		if !r.SW.OK() {
			return fmt.Errorf("STORE answered %v", r.SW)
		}
		auth.Counter++
		if first == nil {
			first = &t
		}
	}
	if err := draw(p, card); err != nil {
		return err
	}

	p.step("8. A gate checks the first ticket, offline, over the contactless interface")
	fci, err := cardproto.ParseFCI(gate.send("SELECT", cardproto.Select()))
	if err != nil {
		return err
	}
	p.line("   the contactless FCI shows no storage status (certificate: %v)", fci.Certificate != nil)
	found, err := cardproto.ParseTicketState(gate.send("FIND", cardproto.Find(cardproto.Query{Seller: first.Seller, Date: first.Date})))
	if err != nil {
		return err
	}
	if err := found.Ticket.Verify(issuerKeys); err != nil {
		return err
	}
	p.line("   found %v for %v %v at %s; issuer signature verified", found.Ticket.ID, found.Ticket.Date, found.Ticket.Time, found.Ticket.Seller)
	check := cardproto.CheckRecord{Gate: [4]byte{'G', 'A', 'T', '1'},
		Time: ticketfmt.DateTime{Date: first.Date, Hour: first.Time.Hour, Minute: first.Time.Minute}}
	if check.Time.Minute >= 10 {
		check.Time.Minute -= 10
	}
	var nonce [cardkeys.NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	receipt, err := cardproto.ParseReceipt(gate.send("CHECK", cardproto.Check(found.Ticket.ID, check.Gate, check.Time, nonce)))
	if err != nil {
		return err
	}
	if err := cardproto.VerifyReceipt(card.PublicKey(), serial, found.Raw, check, nonce[:], receipt); err != nil {
		return err
	}
	p.line("   the card's receipt verifies with the card key: admitted")

	p.step("9. The handset sees the card's notification and fetches it")
	r := handset.try(cardproto.Status())
	n, _ := r.SW.Notification()
	p.line("   handset  STATUS            → %v: a notification of %d bytes is waiting", r.SW, n)
	note, err := cardproto.ParseNotification(handset.send("FETCH", cardproto.Fetch()))
	if err != nil {
		return err
	}
	p.line("   notification %d: the card now has room for %d bytes and %d tickets, once the checked one is deleted",
		note.Number, note.Status.AvailableBytes(), note.Status.AvailableTickets())
	handset.send("TERMINAL RESPONSE", cardproto.TerminalResponse(note.Number, 0))
	if err := draw(p, card); err != nil {
		return err
	}
	p.line("")
	p.line("The checked ticket's bytes are reclaimable: at its next sync the virtual ticket box")
	p.line("deletes it and moves the next tickets onto the card (the network side comes next).")
	return p.err
}

// reader sends APDUs on one interface and prints each exchange.
type reader struct {
	ctx  context.Context
	p    *printer
	port *emulator.Port
	who  string
	err  error
}

// try sends one command and collects a response given in parts.
func (r *reader) try(cmd apdu.Command) apdu.Response {
	if r.err != nil {
		return apdu.Response{SW: apdu.SWUnknown}
	}
	var out []byte
	for {
		raw, err := cmd.Bytes()
		if err == nil {
			raw, err = r.port.Transmit(r.ctx, raw)
		}
		var resp apdu.Response
		if err == nil {
			resp, err = apdu.ParseResponse(raw)
		}
		if err != nil {
			r.err = err
			r.p.err = err
			return apdu.Response{SW: apdu.SWUnknown}
		}
		out = append(out, resp.Data...)
		if _, more := resp.SW.MoreData(); !more {
			return apdu.Response{Data: out, SW: resp.SW}
		}
		cmd = cardproto.GetResponse(256)
	}
}

// send sends one command that must succeed, prints it and returns its data.
func (r *reader) send(name string, cmd apdu.Command) []byte {
	resp := r.try(cmd)
	if r.err == nil && !resp.SW.OK() {
		r.err = fmt.Errorf("%s answered %v", name, resp.SW)
		r.p.err = r.err
	}
	r.p.line("   %s  %-17s → %v, %d bytes", r.who, name, resp.SW, len(resp.Data))
	return resp.Data
}

func draw(p *printer, card *emulator.Card) error {
	s, err := card.Snapshot()
	if err != nil {
		return err
	}
	p.line("")
	var b strings.Builder
	if err := cardview.Render(&b, s); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		p.line("%s", strings.TrimRight("   "+l, " "))
	}
	return nil
}
