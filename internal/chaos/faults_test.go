package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/emulator"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/nvm"
)

// faultKind is one kind of fault a step may inject.
type faultKind int

// The faults. The card faults hit one command APDU (hostlib.Faults) or one
// page write of the card's memory (a tear, a failed write); the server
// faults hit the server between two APDUs (a restart) or one HTTP request;
// the interleavings run another actor between two APDUs of a sync.
const (
	noFault faultKind = iota
	// cardDrop: the card ran the command, its answer is lost.
	cardDrop
	// cardRemoveBefore: the card leaves before the command reaches it.
	cardRemoveBefore
	// cardRemoveAfter: the card leaves after it ran the command.
	cardRemoveAfter
	// cardTear: the power is cut at the card's n-th page write.
	cardTear
	// cardWriteFail: the card's n-th page write fails; the card answers
	// 6400 and changes nothing.
	cardWriteFail
	// serverRestart: the server and its store are closed and reopened on
	// the same database before the n-th APDU (between the sync's rounds).
	serverRestart
	// netDropRequest: the n-th HTTP request never reaches the server.
	netDropRequest
	// netDropResponse: the server handles the n-th request (and commits),
	// its answer is lost.
	netDropResponse
	// netDuplicate: the n-th request is sent twice; the client gets the
	// second answer.
	netDuplicate
	// gateMidSync: before the n-th APDU of a sync, the holder presents the
	// card at a gate, which checks one of its tickets (the one an exchange
	// gives, when it can).
	gateMidSync
	// orderMidSync: before the n-th APDU of a sync, an operator orders
	// tickets for the card.
	orderMidSync
	// handsetMidSync: before the n-th APDU of a sync, another handset runs
	// a whole sync of the card.
	handsetMidSync
	numFaults
)

var faultNames = [numFaults]string{"none", "card-drop-response", "card-remove-before", "card-remove-after",
	"card-tear", "card-write-fail", "server-restart", "net-drop-request", "net-drop-response", "net-duplicate",
	"gate-check-mid-sync", "order-mid-sync", "sync-mid-sync"}

// String names the fault kind as the run's report does.
func (k faultKind) String() string { return faultNames[k] }

// fault is a fault chosen for a step: its kind, where it strikes (the n-th
// APDU, page write or HTTP request of the step, from 1) and, for a tear,
// what the torn page holds.
type fault struct {
	kind faultKind
	at   int
	mode nvm.TearMode
}

// String says what the fault does and where, for the trace.
func (f fault) String() string {
	switch f.kind {
	case noFault:
		return "no fault"
	case cardTear:
		return fmt.Sprintf("%v at write %d (%s)", f.kind, f.at, []string{"half", "none", "after"}[f.mode])
	case cardWriteFail:
		return fmt.Sprintf("%v at write %d", f.kind, f.at)
	case netDropRequest, netDropResponse, netDuplicate:
		return fmt.Sprintf("%v at request %d", f.kind, f.at)
	}
	return fmt.Sprintf("%v at APDU %d", f.kind, f.at)
}

// errNet is the error of an HTTP request the flaky network lost.
var errNet = errors.New("chaos: network fault")

// flakyNet is an http.RoundTripper that injects one fault at the n-th
// request after it is armed: the request dropped, its answer lost after the
// server handled it, or the request sent twice.
type flakyNet struct {
	base http.RoundTripper

	mu    sync.Mutex
	n     int
	f     fault
	fired bool
}

// arm injects f at the f.at-th request from now (a fault of another kind
// disarms).
func (n *flakyNet) arm(f fault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n, n.f, n.fired = 0, f, false
	switch f.kind {
	case netDropRequest, netDropResponse, netDuplicate:
	default:
		n.f = fault{}
	}
}

// disarm removes the fault and reports whether it struck.
func (n *flakyNet) disarm() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	fired := n.fired
	n.f, n.fired = fault{}, false
	return fired
}

// RoundTrip implements http.RoundTripper.
func (n *flakyNet) RoundTrip(req *http.Request) (*http.Response, error) {
	n.mu.Lock()
	n.n++
	f := n.f
	hit := f.kind != noFault && n.n == f.at
	if hit {
		n.fired = true
	}
	n.mu.Unlock()
	if !hit {
		return n.base.RoundTrip(req)
	}
	switch f.kind {
	case netDropRequest:
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, fmt.Errorf("%w: request dropped before the server", errNet)
	case netDropResponse:
		resp, err := n.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		discard(resp)
		return nil, fmt.Errorf("%w: the server answered %d, the answer was lost", errNet, resp.StatusCode)
	}
	// netDuplicate: send a copy first, then the request itself.
	first := req.Clone(req.Context())
	if req.Body != nil {
		if req.GetBody == nil {
			return nil, errors.New("chaos: cannot send a request twice without GetBody")
		}
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		first.Body = body
	}
	resp, err := n.base.RoundTrip(first)
	if err != nil {
		return nil, err
	}
	discard(resp)
	return n.base.RoundTrip(req)
}

// discard reads and closes a response nobody will see.
func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
}

// slot is interface i of the card as a reader reaches it: whatever body the
// card has now (w.present and w.arm replace it), through its port, which
// reports a tear or a card out of the field as hostlib.ErrCardRemoved.
func (w *world) slot(c *card, i applet.Interface) hostlib.Transport {
	return hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		resp, err := c.emu.Port(i).Transmit(ctx, cmd)
		switch {
		case errors.Is(err, emulator.ErrTorn):
			w.stats.tears++
		case err == nil && bytes.HasSuffix(resp, []byte{0x64, 0x00}):
			w.stats.writeFails++
		}
		return resp, err
	})
}

// faulty returns the transport to card c's interface i for a step with
// fault f: the slot, with f's APDU fault (the card taken out of the field
// when it is removed), its tear or write failure armed, or a server
// restart or an interleaving (mid, which reports whether it did anything)
// before its n-th APDU. fired reports afterwards whether the fault struck.
func (w *world) faulty(c *card, i applet.Interface, f fault, mid func(faultKind) bool) (t hostlib.Transport, fired func() bool) {
	inner := w.slot(c, i)
	switch f.kind {
	case cardDrop, cardRemoveBefore, cardRemoveAfter:
		hf := map[faultKind]hostlib.Fault{cardDrop: hostlib.DropResponse, cardRemoveBefore: hostlib.RemoveBefore,
			cardRemoveAfter: hostlib.RemoveAfter}[f.kind]
		faults := hostlib.Faults(inner, 0, hostlib.FaultAt(f.at, hf))
		inner = hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
			resp, err := faults.Transmit(ctx, cmd)
			if errors.Is(err, hostlib.ErrCardRemoved) {
				// Out of the field: the interface loses its power.
				_ = c.emu.PowerOff(ctx, i)
			}
			return resp, err
		})
	case cardTear:
		w.arm(c, nvm.Fault{Kind: nvm.Tear, At: f.at, Mode: f.mode})
	case cardWriteFail:
		w.arm(c, nvm.Fault{Kind: nvm.FailWrite, At: f.at})
	}
	var mu sync.Mutex
	n := 0
	midStruck := false
	t = hostlib.TransportFunc(func(ctx context.Context, cmd []byte) ([]byte, error) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		w.apdus++
		switch {
		case k != f.at:
		case f.kind == serverRestart:
			w.restart()
		case f.kind == gateMidSync, f.kind == orderMidSync, f.kind == handsetMidSync:
			midStruck = mid(f.kind)
		}
		return inner.Transmit(ctx, cmd)
	})
	torn, failed := w.stats.tears, w.stats.writeFails
	fired = func() bool {
		mu.Lock()
		defer mu.Unlock()
		switch f.kind {
		case cardDrop, cardRemoveBefore, cardRemoveAfter, serverRestart:
			return n >= f.at
		case cardTear:
			return w.stats.tears > torn
		case cardWriteFail:
			return w.stats.writeFails > failed
		case gateMidSync, orderMidSync, handsetMidSync:
			return midStruck
		}
		return false
	}
	return t, fired
}

// TestFlakyNet proves the network faults do what they say: a dropped
// request never reaches the server, a dropped response does (and the
// client gets an error), a duplicated request reaches it twice (and the
// client gets the second answer), and the faults strike the n-th request
// only.
func TestFlakyNet(t *testing.T) {
	var mu sync.Mutex
	var got []string
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		n := len(got)
		mu.Unlock()
		fmt.Fprintf(w, "answer %d", n)
	}))
	defer hs.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	flaky := &flakyNet{base: base}
	hc := &http.Client{Transport: flaky}
	post := func(body string) (string, error) {
		resp, err := hc.Post(hs.URL, "text/plain", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}

	for _, tc := range []struct {
		kind    faultKind
		reached []string
		answer  string
	}{
		{netDropRequest, nil, ""},
		{netDropResponse, []string{"b"}, ""},
		{netDuplicate, []string{"b", "b"}, "answer 3"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			flaky.arm(fault{kind: tc.kind, at: 2})
			ans, err := post("a")
			require.NoError(t, err)
			assert.Equal(t, "answer 1", ans)
			ans, err = post("b")
			if tc.answer == "" {
				require.ErrorIs(t, err, errNet)
			} else {
				require.NoError(t, err)
				assert.Equal(t, tc.answer, ans)
			}
			assert.True(t, flaky.disarm(), "the fault struck")
			mu.Lock()
			defer mu.Unlock()
			assert.Equal(t, append([]string{"a"}, tc.reached...), got)
		})
	}
}
