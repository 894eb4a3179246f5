package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/gate"
	"github.com/simtix/simtix/hostlib/gate/journal"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/cardview"
	"github.com/simtix/simtix/internal/placement"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// venueZone is the time zone the demo's gates run in: the corpus's use
// times are taken as UTC, so that the story is the same on every machine.
var venueZone = time.UTC

// methodStory runs the whole method: a server on SQLite in a temporary
// directory, a 2 KB card, a handset watching it, the corpus ordered for
// the card, and gates checking the tickets one after another.
func methodStory(ctx context.Context, p *printer, corpusTickets []ticketfmt.Ticket) (err error) {
	p.title("\nThe method: the card, the virtual ticket box, the handset and the gates")
	dir, err := os.MkdirTemp("", "simtix-demo-")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	keys, err := issuer.Open(ctx, dir, "")
	if err != nil {
		return err
	}
	defer keys.Close()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "simtix.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := server.New(server.Config{Store: st, Keys: keys, Logger: quietLogger()})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	addr := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { addr <- a }) }()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a.String()
	case err := <-served:
		return fmt.Errorf("server: %w", err)
	}
	defer func() {
		cancel()
		err = errors.Join(err, <-served)
	}()
	p.line("The ticket center and virtual ticket box run at %s, on an embedded SQLite", url)
	p.line("database in %s (the issuer key, master.key and the tokens are there too).", dir)

	serial, err := ticketfmt.ParseSerial(DemoSerial)
	if err != nil {
		return err
	}
	ram, err := emulator.Personalise(applet.Personalisation{Serial: serial, Master: keys.Master()})
	if err != nil {
		return err
	}
	card, err := emulator.New(ram, emulator.Options{})
	if err != nil {
		return err
	}
	for _, i := range []applet.Interface{applet.Contact, applet.Contactless} {
		if _, err := card.PowerOn(ctx, i); err != nil {
			return err
		}
	}
	p.line("A SIM card %v with %d bytes for tickets is personalised with the server's master key.", serial, applet.DefaultCapacity)

	boxClient, err := apiclient.New(url, "", nil)
	if err != nil {
		return err
	}
	operator := boxClient.WithToken(keys.OperatorToken())
	w := &world{p: p, card: card, serial: serial, operator: operator, events: make(chan handset.Event, 256)}
	h := &handset.Handset{Card: hostlib.NewApplet(card.Port(applet.Contact), hostlib.ClientOptions{}), Box: boxClient}
	watched := make(chan error, 1)
	go func() {
		watched <- h.Watch(ctx, handset.WatchOptions{Interval: 20 * time.Millisecond, EventWait: 10 * time.Second,
			OnEvent: func(e handset.Event) { w.events <- e }})
	}()
	defer func() {
		cancel()
		if werr := <-watched; !errors.Is(werr, context.Canceled) {
			err = errors.Join(err, werr)
		}
	}()

	p.step("1. The handset starts watching: it polls the card's STATUS every 20 ms and long-polls the box")
	if err := w.settle(ctx); err != nil {
		return err
	}

	p.step("2. An operator orders the %d tickets of the corpus for the card", len(corpusTickets))
	req := api.OrderRequest{Carrier: serial.String(), IdempotencyKey: "demo"}
	for _, t := range corpusTickets {
		req.Tickets = append(req.Tickets, api.OrderTicket{Type: t.Type, Seller: t.Seller, Date: t.Date, Time: t.Time,
			Price: t.Price, Seat: t.Seat, Instructions: t.Instructions})
	}
	ans, err := operator.Order(ctx, req)
	if err != nil {
		return err
	}
	p.line("   the center signs each ticket for the card; by the room the card last reported,")
	p.line("   %d go straight to the card (direct) and %d wait in the virtual ticket box (overflow)",
		ans.Summary["card"], ans.Summary["box"])
	p.line("   the box tells the watching handset at once; it syncs and stores them:")
	if err := w.settle(ctx); err != nil {
		return err
	}
	if err := w.drawCard(); err != nil {
		return err
	}
	if err := w.drawBox(ctx); err != nil {
		return err
	}

	p.step("3. Gates check the tickets one after another, offline, over the contactless interface")
	p.line("   (each gate: SELECT for the card certificate, FIND, CHECK with a fresh nonce; the")
	p.line("   card's signed receipt admits. Then the card notifies the handset, which syncs.)")
	j, err := journal.Open(filepath.Join(dir, "gate.journal"))
	if err != nil {
		return err
	}
	defer j.Close()
	order := sortedBySoonest(corpusTickets)
	for i, t := range order {
		now := t.Date.In(t.Time, venueZone).Add(-15 * time.Minute)
		g, err := gate.New(gate.Config{Keys: keys.KeySet(), Venue: t.Seller, Location: venueZone, Journal: j,
			ID: [4]byte{'G', 'A', 'T', byte('A' + i%26)}, Now: func() time.Time { return now }})
		if err != nil {
			return err
		}
		v, err := g.Check(ctx, card.Port(applet.Contactless))
		if err != nil {
			return err
		}
		p.line("")
		p.line("   gate %q at %s: %s", cardview.Truncate(t.Seller, 24), now.Format("2006-01-02 15:04"), verdictLine(v))
		if !v.Accepted {
			return fmt.Errorf("the gate refused a ticket the card holds: %w", v.Reason)
		}
		if err := w.settle(ctx); err != nil {
			return err
		}
		if err := w.compact(ctx); err != nil {
			return err
		}
	}

	p.step("4. The gate's journal goes to the server, which learns every check a second time")
	up, err := journal.Upload(ctx, j, boxClient.WithToken(keys.GateToken()))
	if err != nil {
		return err
	}
	deny, err := boxClient.WithToken(keys.GateToken()).Deny(ctx)
	if err != nil {
		return err
	}
	p.line("   %d checks uploaded, each receipt verified by the server; %d tickets checked twice;",
		up.Accepted+up.Duplicates, len(up.CheckedTwice))
	p.line("   the deny list now names %d checked tickets", len(deny))
	view, err := operator.Tickets(ctx, serial.String())
	if err != nil {
		return err
	}
	counts := map[box.State]int{}
	for _, t := range view.Tickets {
		counts[t.State]++
	}
	p.line("")
	p.line("Every one of the %d tickets was checked exactly once (%d checked), none lost, and the card", len(view.Tickets), counts[box.Checked])
	p.line("never held more than its 2 KB: the box kept the rest and moved each onto the card as room appeared.")
	if counts[box.Checked] != len(corpusTickets) {
		return fmt.Errorf("only %d of %d tickets checked", counts[box.Checked], len(corpusTickets))
	}
	return p.err
}

// world is what the story watches.
type world struct {
	p        *printer
	card     *emulator.Card
	serial   ticketfmt.Serial
	operator *apiclient.Client
	events   chan handset.Event
	// syncs counts the handset's syncs so far.
	syncs int
}

// settle waits until the handset has done all it can, printing what it
// did, and checks that every ticket is in its one place.
func (w *world) settle(ctx context.Context) error {
	deadline := time.After(30 * time.Second)
	for {
		w.drain()
		_, due := w.operator.Events(ctx, w.serial, 0)
		err := placement.Observe(w.card.Snapshot, func() ([]api.TicketView, error) {
			view, err := w.operator.Tickets(ctx, w.serial.String())
			return view.Tickets, err
		})
		if errors.Is(err, placement.ErrMisplaced) {
			return err
		}
		if err == nil && errors.Is(due, apiclient.ErrNoContent) && w.syncs > 0 {
			w.drain()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("the card and the box did not settle: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// drain prints the handset's events so far.
func (w *world) drain() {
	for {
		select {
		case e := <-w.events:
			w.print(e)
		default:
			return
		}
	}
}

func (w *world) print(e handset.Event) {
	switch e.Kind {
	case handset.EventNotification:
		s := e.Notification.Status
		if s.Checked == 0 {
			return // raised by the handset's own stores
		}
		w.p.line("     card → handset: notification %d: %d tickets (%d checked), %d bytes available",
			e.Notification.Number, s.Stored, s.Checked, s.AvailableBytes())
	case handset.EventDue:
		w.p.line("     box → handset: %d tickets due to the card", e.Due)
	case handset.EventSync:
		w.syncs++
		r := e.Result
		if r.Planned == 0 && e.Why != "start" {
			return
		}
		w.p.line("     handset ↔ box: sync (%s): %d steps applied of %d; card: %d tickets, %d bytes free; box: %d",
			e.Why, r.Steps, r.Planned, r.Status.Stored, r.Status.AvailableBytes(), r.Waiting)
	case handset.EventError:
		w.p.line("     handset: %v (it will retry)", e.Err)
	}
}

// drawCard draws the card's ticket file in full.
func (w *world) drawCard() error {
	snap, err := w.card.Snapshot()
	if err != nil {
		return err
	}
	var b strings.Builder
	if err := cardview.Render(&b, snap); err != nil {
		return err
	}
	w.p.line("")
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		w.p.line("%s", strings.TrimRight("   "+l, " "))
	}
	return nil
}

// drawBox lists the tickets waiting in the box.
func (w *world) drawBox(ctx context.Context) error {
	view, err := w.operator.Tickets(ctx, w.serial.String())
	if err != nil {
		return err
	}
	inBox := waiting(view)
	w.p.line("")
	w.p.line("   the virtual ticket box holds %d tickets for the card, soonest first:", len(inBox))
	for _, t := range inBox {
		w.p.line("     %v  %3d bytes  %v %v  %s", t.ID, t.Size, t.Date, t.Time, cardview.Truncate(t.Seller, 30))
	}
	return nil
}

// compact draws the card as one bar and counts the box.
func (w *world) compact(ctx context.Context) error {
	snap, err := w.card.Snapshot()
	if err != nil {
		return err
	}
	view, err := w.operator.Tickets(ctx, w.serial.String())
	if err != nil {
		return err
	}
	checked := 0
	for _, t := range view.Tickets {
		if t.State == box.Checked {
			checked++
		}
	}
	w.p.line("     card [%s] %2d tickets   box %2d   checked %2d",
		cardview.Bar(snap, 48), len(snap.Tickets), len(waiting(view)), checked)
	return nil
}

// waiting returns the tickets in the box, soonest first.
func waiting(view api.TicketsAnswer) []api.TicketView {
	var out []api.TicketView
	for _, t := range view.Tickets {
		if t.State == box.InBox {
			out = append(out, t)
		}
	}
	slices.SortStableFunc(out, func(a, b api.TicketView) int { return ticketfmt.CompareUse(a.Date, a.Time, b.Date, b.Time) })
	return out
}

// sortedBySoonest returns the tickets by use date and time.
func sortedBySoonest(ts []ticketfmt.Ticket) []ticketfmt.Ticket {
	out := slices.Clone(ts)
	slices.SortStableFunc(out, func(a, b ticketfmt.Ticket) int { return ticketfmt.CompareUse(a.Date, a.Time, b.Date, b.Time) })
	return out
}

// verdictLine is a gate's verdict in one line.
func verdictLine(v gate.Verdict) string {
	if !v.Accepted {
		return fmt.Sprintf("REFUSED: %v", v.Reason)
	}
	return fmt.Sprintf("ACCEPTED %v (%s %v %v), %d APDUs%s", v.Ticket.ID, cardview.Truncate(v.Ticket.Seller, 20),
		v.Ticket.Date, v.Ticket.Time, v.APDUs, timing(v))
}
