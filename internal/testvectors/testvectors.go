// Package testvectors holds the test vectors of ../shared/spec/vectors.json,
// computed from the spec by an independent implementation, for the
// project's tests. It is not for production code.
package testvectors

import (
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

//go:embed vectors.json
var raw []byte

// Vectors are the values of vectors.json, hex decoded.
type Vectors struct {
	MasterSecret         []byte
	Serial               []byte
	KAuth                []byte
	KStore               []byte
	IssuerPrivateScalar  []byte
	IssuerPublic         []byte
	IssuerSPKI           []byte
	IssuerKeyID          []byte
	TicketFields         TicketFields
	TicketUnsignedE1     []byte
	TicketSignature      []byte
	TicketE1             []byte
	TicketLength         int
	Epoch                uint32
	Counter              uint32
	Authorisation9A      []byte
	StoreMAC             []byte
	DeleteMACChecked     []byte
	SyncChallenge        []byte
	CardPrivateScalar    []byte
	CardPublic           []byte
	InventoryDigestEmpty []byte
	SyncMAC              []byte
	CardCertificateE5    []byte
	CertMAC              []byte
	SyncE4               []byte
	CheckGateID          []byte
	CheckTime            []byte
	CheckNonce           []byte
	CheckReceipt9D       []byte
}

// TicketFields are the fields of the example ticket, as text.
type TicketFields struct {
	ID           string `json:"id"`
	Type         int    `json:"type"`
	Seller       string `json:"seller"`
	Date         string `json:"date"`
	Time         string `json:"time"`
	Price        uint32 `json:"price"`
	Seat         string `json:"seat"`
	Instructions string `json:"instructions"`
}

// Load decodes the embedded vectors.
func Load() (*Vectors, error) {
	var j struct {
		TicketFields TicketFields `json:"ticket_fields"`
		TicketLength int          `json:"ticket_length"`
		Epoch        uint32       `json:"epoch"`
		Counter      uint32       `json:"counter"`
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("vectors.json: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("vectors.json: %w", err)
	}
	var firstErr error
	h := func(key string) []byte {
		s, ok := m[key].(string)
		if !ok {
			if firstErr == nil {
				firstErr = fmt.Errorf("vectors.json: %s missing", key)
			}
			return nil
		}
		b, err := hex.DecodeString(s)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("vectors.json: %s: %w", key, err)
		}
		return b
	}
	v := &Vectors{
		MasterSecret:         h("master_secret"),
		Serial:               h("serial"),
		KAuth:                h("K_auth"),
		KStore:               h("K_store"),
		IssuerPrivateScalar:  h("issuer_private_scalar"),
		IssuerPublic:         h("issuer_public_uncompressed"),
		IssuerSPKI:           h("issuer_spki_der"),
		IssuerKeyID:          h("issuer_key_id"),
		TicketFields:         j.TicketFields,
		TicketUnsignedE1:     h("ticket_unsigned_E1"),
		TicketSignature:      h("ticket_signature"),
		TicketE1:             h("ticket_E1"),
		TicketLength:         j.TicketLength,
		Epoch:                j.Epoch,
		Counter:              j.Counter,
		Authorisation9A:      h("authorisation_9A"),
		StoreMAC:             h("store_mac"),
		DeleteMACChecked:     h("delete_mac_expected_state_01"),
		SyncChallenge:        h("sync_challenge"),
		CardPrivateScalar:    h("card_private_scalar"),
		CardPublic:           h("card_public_uncompressed"),
		InventoryDigestEmpty: h("sync_inventory_digest_empty_card"),
		SyncMAC:              h("sync_mac"),
		CardCertificateE5:    h("card_certificate_E5"),
		CertMAC:              h("cert_mac"),
		SyncE4:               h("sync_E4"),
		CheckGateID:          h("check_gate_id"),
		CheckTime:            h("check_time"),
		CheckNonce:           h("check_nonce"),
		CheckReceipt9D:       h("check_receipt_9D"),
	}
	return v, firstErr
}
