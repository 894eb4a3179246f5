package applet_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/internal/cardtest"
	"github.com/simtix/simtix/nvm"
)

// inProcess is the applet itself as a cardtest target: no transport at all.
type inProcess struct {
	card *applet.Card
}

func (p *inProcess) Transmit(_ context.Context, i applet.Interface, cmd []byte) ([]byte, error) {
	return p.card.Process(i, cmd)
}

func (p *inProcess) Reset(_ context.Context, i applet.Interface) error {
	p.card.Reset(i)
	return nil
}

func newInProcess(t testing.TB, f cardtest.Fixture) cardtest.Target {
	ps, pages := applet.MemoryLayout(f.Capacity, f.MaxTickets)
	card, err := applet.Personalise(nvm.NewRAM(ps, pages), f.Personalisation())
	require.NoError(t, err)
	card.SetT0(f.T0)
	return &inProcess{card: card}
}

func TestBehaviour(t *testing.T) {
	cardtest.Run(t, newInProcess)
}
