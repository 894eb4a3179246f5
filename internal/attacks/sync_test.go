package attacks_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/apdu"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/box"
	"github.com/simtix/simtix/cardproto"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/systemtest"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/ticketfmt"
)

// TestOutOfOrderSyncAnswers: two syncs of one card run at once; the card
// answers both challenges, and the answer of the older epoch reaches the
// box after the newer one, whose plan the card has already run. Accepted,
// it would settle that plan as unused (its counter predates it) and put
// the delivered ticket back in the box while it is on the card. The box
// answers 409 and changes nothing. In order, both are accepted and the
// older plan is void on the card (6984).
func TestOutOfOrderSyncAnswers(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)

	t.Run("newer first", func(t *testing.T) {
		id := h.order(t, 1)[0]
		older, newer := h.begin(t), h.begin(t)
		plan, err := post(t, env, h.serial, newer, false, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"STORE " + id.String()}, ops(plan.Steps))
		h.run(t, plan.Steps)

		before := boxState(t, env, h.serial)
		_, err = post(t, env, h.serial, older, false, nil)
		assertStatus(t, err, http.StatusConflict, "the older epoch after the newer")
		_, err = post(t, env, h.serial, older, true, nil)
		assertStatus(t, err, http.StatusConflict, "the older epoch after the newer, as a closing round")
		assert.Equal(t, before, boxState(t, env, h.serial), "a refused answer changes nothing in the box")

		h.round(t, true)
		assert.Equal(t, box.OnCard, h.states(t)[id])
		h.placed(t)
	})

	t.Run("older first", func(t *testing.T) {
		id := h.order(t, 1)[0]
		older, newer := h.begin(t), h.begin(t)
		first, err := post(t, env, h.serial, older, false, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"STORE " + id.String()}, ops(first.Steps))
		second, err := post(t, env, h.serial, newer, false, nil)
		require.NoError(t, err)
		require.Equal(t, []string{"STORE " + id.String()}, ops(second.Steps), "the first plan settled as unused, the ticket planned again")
		h.refusedCommand(t, stepCommand(t, first.Steps[0]), apdu.SWStaleAuthorization, "the older sync's STORE")
		h.run(t, second.Steps)
		h.round(t, true)
		assert.Equal(t, box.OnCard, h.states(t)[id])
		h.placed(t)
	})

	t.Run("at once", func(t *testing.T) {
		// Both answers race to the box: whichever order it takes them
		// in, it never accepts an epoch that is not after the last one.
		h.order(t, 1)
		a, b := h.begin(t), h.begin(t)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, x := range []answers{b, a} {
			wg.Go(func() { _, errs[i] = post(t, env, h.serial, x, true, nil) })
		}
		wg.Wait()
		require.NoError(t, errs[0], "the newer answer is always accepted")
		if errs[1] != nil {
			assertStatus(t, errs[1], http.StatusConflict, "the older answer, taken second")
		}
		h.placed(t)
	})
}

// TestHandsetLiesAboutTheCard: a handset forwards doctored card answers to
// the box. LIST bytes that hide a check, drop a ticket or add one do not
// match the digest the card MACed (409); a BEGIN SYNC answer with another
// counter, more room, another digest or another public key does not
// authenticate (403). Each lie would move tickets (a checked ticket kept
// alive, a delivered one lost or doubled); the box changes nothing, and an
// honest sync afterwards settles everything.
func TestHandsetLiesAboutTheCard(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	h := certified(t, env, serialA)
	ids := h.order(t, 2)
	h.sync(t)
	g, _ := newGate(t, env, 1)
	admit(t, g, h.card.Port(applet.Contactless)) // ids[0] checked on the card; the box does not know yet
	require.Equal(t, box.OnCard, h.states(t)[ids[0]])

	lie := func(what string, code int, doctor func(a answers) answers) {
		t.Helper()
		before := boxState(t, env, h.serial)
		a := doctor(h.begin(t))
		_, err := post(t, env, h.serial, a, false, nil)
		assertStatus(t, err, code, what)
		assert.Equal(t, before, boxState(t, env, h.serial), "%s: the box changed", what)
	}
	entries := func(a answers) []cardproto.Entry {
		es, err := cardproto.ParseList(a.list)
		require.NoError(t, err)
		require.Len(t, es, 2)
		require.Equal(t, ids[0], es[0].ID)
		require.Equal(t, cardproto.StateChecked, es[0].State)
		require.Equal(t, a.list, append(listEntry(t, es[0]), listEntry(t, es[1])...), "listEntry builds what the card sends")
		return es
	}
	wellFormed := func(list []byte) []byte {
		_, err := cardproto.ParseList(list)
		require.NoError(t, err, "the lie must be a well-formed LIST")
		return list
	}
	hideCheck := func(a answers) answers {
		es := entries(a)
		es[0].State, es[0].Check = cardproto.StateUnchecked, nil
		a.list = wellFormed(append(listEntry(t, es[0]), listEntry(t, es[1])...))
		return a
	}

	lie("LIST with the check hidden", http.StatusConflict, hideCheck)
	lie("LIST without the checked ticket", http.StatusConflict, func(a answers) answers {
		a.list = wellFormed(listEntry(t, entries(a)[1]))
		return a
	})
	lie("LIST with a made-up ticket", http.StatusConflict, func(a answers) answers {
		es := entries(a)
		extra := es[1]
		extra.ID = randomID(t)
		a.list = wellFormed(append(bytes.Clone(a.list), listEntry(t, extra)...))
		return a
	})
	lie("BEGIN SYNC with the digest of the doctored LIST", http.StatusForbidden, func(a answers) answers {
		genuine := sha256.Sum256(a.list)
		a = hideCheck(a)
		doctored := sha256.Sum256(a.list)
		a.e4 = doctoredSync(t, a.e4, genuine[:], doctored[:], func(s cardproto.SyncAnswer) bool { return string(s.Digest) == string(doctored[:]) })
		return a
	})
	require.Equal(t, box.OnCard, h.states(t)[ids[0]], "the check is still unknown to the box")

	// The box learns of the check and plans: DELETE the checked ticket,
	// STORE a new one. The handset takes the plan and does not run it.
	later := h.order(t, 1)[0]
	plan := h.round(t, false)
	require.Equal(t, []string{"DELETE " + ids[0].String(), "STORE " + later.String()}, ops(plan.Steps))
	counter := h.snapshot(t).Counter
	require.Equal(t, counter, stepAuth(t, plan.Steps[0]).Counter)

	claim := func(n uint32) func(a answers) answers {
		return func(a answers) answers {
			a.e4 = doctoredSync(t, a.e4, field(0x87, u32(counter)), field(0x87, u32(counter+n)),
				func(s cardproto.SyncAnswer) bool { return s.Status.Counter == counter+n })
			return a
		}
	}
	lie("BEGIN SYNC claiming the whole plan used", http.StatusForbidden, claim(2))
	lie("BEGIN SYNC claiming the DELETE used", http.StatusForbidden, claim(1))
	lie("BEGIN SYNC claiming more room", http.StatusForbidden, func(a answers) answers {
		s, err := cardproto.ParseSync(a.e4)
		require.NoError(t, err)
		a.e4 = doctoredSync(t, a.e4, field(0x81, u16(s.Status.Free)), field(0x81, u16(s.Status.Free+1000)),
			func(d cardproto.SyncAnswer) bool { return d.Status.Free == s.Status.Free+1000 })
		return a
	})
	lie("BEGIN SYNC with another public key", http.StatusForbidden, func(a answers) answers {
		s, err := cardproto.ParseSync(a.e4)
		require.NoError(t, err)
		a.e4 = doctoredSync(t, a.e4, s.PublicKey, attackerKey(t), nil)
		return a
	})
	assert.Equal(t, box.Delivering, h.states(t)[later])

	// Honest again: the plan settles as unused and is made again.
	plan = h.round(t, false)
	require.Equal(t, []string{"DELETE " + ids[0].String(), "STORE " + later.String()}, ops(plan.Steps))
	h.run(t, plan.Steps)
	h.round(t, true)
	assert.Equal(t, map[ticketfmt.ID]box.State{ids[0]: box.Checked, ids[1]: box.OnCard, later: box.OnCard}, h.states(t))
	h.placed(t)
}

// TestSyncWithoutACard: nobody without the card (its K_auth) wins a sync.
// Garbage is 400; the attacker's own genuine card answering as the victim's
// serial, a recorded answer with a made-up MAC, and a registration of a
// serial the box has never seen (or of the card with another public key)
// are 403. The box registers nobody and changes nothing.
func TestSyncWithoutACard(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	victim := certified(t, env, serialA)
	victim.order(t, 1)
	attacker := certified(t, env, serialB)
	unseen, err := ticketfmt.ParseSerial(serialC)
	require.NoError(t, err)

	try := func(what string, serial ticketfmt.Serial, code int, doctor func(a answers) answers) {
		t.Helper()
		before, beforeVictim := boxState(t, env, serial), boxState(t, env, victim.serial)
		ch, err := env.Client("").Challenge(t.Context(), serial)
		require.NoError(t, err)
		_, err = post(t, env, serial, doctor(attacker.answer(t, ch.Challenge)), false, nil)
		assertStatus(t, err, code, what)
		assert.Equal(t, before, boxState(t, env, serial), "%s: the box changed", what)
		assert.Equal(t, beforeVictim, boxState(t, env, victim.serial), "%s: the victim's tickets changed", what)
	}
	asSerial := func(s ticketfmt.Serial) func(a answers) answers {
		return func(a answers) answers {
			a.e4 = doctoredSync(t, a.e4, field(0x88, attacker.serial[:]), field(0x88, s[:]),
				func(d cardproto.SyncAnswer) bool { return d.Status.Serial == s })
			return a
		}
	}

	try("random bytes", victim.serial, http.StatusBadRequest, func(a answers) answers {
		_, _ = rand.Read(a.e4)
		return a
	})
	try("another genuine card answering as the victim", victim.serial, http.StatusForbidden, asSerial(victim.serial))
	try("a recorded answer with a made-up MAC", victim.serial, http.StatusForbidden, func(a answers) answers {
		a = asSerial(victim.serial)(a)
		_, _ = rand.Read(a.e4[len(a.e4)-16:])
		return a
	})
	try("registration of a serial the box never saw", unseen, http.StatusForbidden, asSerial(unseen))
	assert.False(t, registered(t, env, unseen), "no card, no registration")

	// The first sync of a genuine card, with the attacker's key in place of
	// the card's: the box would certify the attacker's key for the serial.
	fresh := newHolder(t, env, serialC)
	before := boxState(t, env, fresh.serial)
	a := fresh.begin(t)
	s, err := cardproto.ParseSync(a.e4)
	require.NoError(t, err)
	a.e4 = doctoredSync(t, a.e4, s.PublicKey, attackerKey(t), nil)
	_, err = post(t, env, fresh.serial, a, false, nil)
	assertStatus(t, err, http.StatusForbidden, "first sync with another key")
	assert.Equal(t, before, boxState(t, env, fresh.serial))
	assert.False(t, registered(t, env, fresh.serial))
	// The genuine card then registers with its own key.
	fresh.sync(t)
	fci, err := fresh.applet.Select(t.Context())
	require.NoError(t, err)
	cert, err := ticketfmt.UnmarshalCertificate(fci.Certificate)
	require.NoError(t, err)
	assert.True(t, cert.PublicKey.Equal(fresh.card.PublicKey()), "the certificate is for the card's own key")

	victim.placed(t)
	attacker.placed(t)
}

// TestChallengeMisuse: a challenge is single use and for one serial. The
// same request sent again, and a new BEGIN SYNC over a used challenge (a
// newer epoch, a valid MAC) are 403; another card's challenge is 403 on
// this card's sync and 400 on the other's (the answer names this card).
// The refusals do not use up the other card's challenge.
func TestChallengeMisuse(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	a := certified(t, env, serialA)
	b := certified(t, env, serialB)
	a.order(t, 1)

	first := a.begin(t)
	_, err := post(t, env, a.serial, first, true, nil)
	require.NoError(t, err)
	before := boxState(t, env, a.serial)
	_, err = post(t, env, a.serial, first, true, nil)
	assertStatus(t, err, http.StatusForbidden, "the same request again")
	again := a.answer(t, first.challenge)
	_, err = post(t, env, a.serial, again, true, nil)
	assertStatus(t, err, http.StatusForbidden, "a fresh BEGIN SYNC over a used challenge")
	assert.Equal(t, before, boxState(t, env, a.serial))

	chB, err := env.Client("").Challenge(t.Context(), b.serial)
	require.NoError(t, err)
	stolen := a.answer(t, chB.Challenge)
	beforeB := boxState(t, env, b.serial)
	_, err = post(t, env, a.serial, stolen, true, nil)
	assertStatus(t, err, http.StatusForbidden, "B's challenge on A's sync")
	_, err = post(t, env, b.serial, stolen, true, nil)
	assertStatus(t, err, http.StatusBadRequest, "A's answer on B's sync")
	assert.Equal(t, before, boxState(t, env, a.serial))
	assert.Equal(t, beforeB, boxState(t, env, b.serial))
	_, err = post(t, env, b.serial, b.answer(t, chB.Challenge), true, nil)
	require.NoError(t, err, "B's challenge is still good for B")

	a.placed(t)
	b.placed(t)
}

// TestExpiredChallengeAndSession: a challenge answered after its time (2
// min) is 403, and a holder's session after its time (10 min) is 401, on a
// server whose clock the test moves.
func TestExpiredChallengeAndSession(t *testing.T) {
	env := systemtest.New(t, systemtest.Options{})
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	wait := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	srv, err := server.New(server.Config{Store: env.Store, Keys: env.Keys, Now: clock})
	require.NoError(t, err)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); _ = srv.Close() })
	c, err := apiclient.New(hs.URL, "", nil)
	require.NoError(t, err)

	h := newHolder(t, env, serialA)
	h.hs.Box = c
	h.sync(t)

	ch, err := c.Challenge(t.Context(), h.serial)
	require.NoError(t, err)
	wait(3 * time.Minute)
	late := h.answer(t, ch.Challenge)
	before := boxState(t, env, h.serial)
	_, err = c.Sync(t.Context(), h.serial, syncRequest(late, true))
	assertStatus(t, err, http.StatusForbidden, "an expired challenge")
	assert.Equal(t, before, boxState(t, env, h.serial))

	session, _, err := (&handset.Handset{Card: h.applet, Box: c}).SignIn(t.Context())
	require.NoError(t, err)
	_, err = c.WithToken(session).Tickets(t.Context(), h.serial.String())
	require.NoError(t, err)
	wait(11 * time.Minute)
	_, err = c.WithToken(session).Tickets(t.Context(), h.serial.String())
	assertStatus(t, err, http.StatusUnauthorized, "an expired session")
	h.placed(t)
}

// doctoredSync replaces old by repl in a BEGIN SYNC answer and requires
// that the result still parses (and, with want, says what the lie says):
// only the MAC can refuse it.
func doctoredSync(t *testing.T, e4, old, repl []byte, want func(cardproto.SyncAnswer) bool) []byte {
	t.Helper()
	out := patch(t, e4, old, repl)
	s, err := cardproto.ParseSync(out)
	require.NoError(t, err, "the lie must be a well-formed answer")
	if want != nil {
		require.True(t, want(s), "the lie says what it means to")
	}
	return out
}

// attackerKey is a public key the attacker holds the private key of, as
// BEGIN SYNC encodes it.
func attackerKey(t *testing.T) []byte {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	b, err := ticketfmt.EncodePublicKey(&k.PublicKey)
	require.NoError(t, err)
	return b
}
