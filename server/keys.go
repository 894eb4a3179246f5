package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/ticketfmt"
)

// KeyRotator is an optional interface of Keys: keys whose issuer key can be
// rotated while the server runs. *issuer.Keys is one. Rotate makes a new
// issuer key current and returns its key ID; the previous key stays in
// KeySet, so that what it signed still verifies. A Rotate error that wraps
// issuer.ErrNoRotate (a key the operator gave as a file) is answered 409.
type KeyRotator interface {
	Rotate(ctx context.Context) (ticketfmt.KeyID, error)
}

// handleRotate rotates the issuer key (operator): tickets and card
// certificates signed from now on carry the new key ID; the answer is the
// new key ID and the key set gates must trust from now on. Rotating again
// is harmless: every key stays trusted.
func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	rot, ok := s.cfg.Keys.(KeyRotator)
	if !ok {
		writeError(w, http.StatusConflict, "this server's issuer key cannot be rotated while it runs")
		return
	}
	id, err := rot.Rotate(r.Context())
	switch {
	case errors.Is(err, issuer.ErrNoRotate):
		writeError(w, http.StatusConflict, "%v", err)
		return
	case errors.Is(err, issuer.ErrClosed):
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	case err != nil:
		s.fail(w, r, err)
		return
	}
	s.log.Info("issuer key rotated", "key", id.String())
	set := s.cfg.Keys.KeySet()
	pem, err := set.MarshalPEM()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, api.KeyRotation{Current: id, Keys: set.IDs(), PEM: string(pem)})
}

// updateSigning runs fn in a store transaction, as Store.Update does, for
// transactions that sign with the issuer key: when a rotation retires the
// key fn got (issuer.ErrRetired), the transaction rolled back, and it runs
// again with the new key.
func (s *Server) updateSigning(ctx context.Context, fn func(tx store.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := s.cfg.Store.Update(ctx, fn)
		if !errors.Is(err, issuer.ErrRetired) || attempt == 2 {
			return err
		}
	}
}
