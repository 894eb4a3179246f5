// Package apiclient is a Go client of the simtix server's HTTP API (see
// api/openapi.yaml): orders, tickets, the handset's challenge, sync and
// events, the gates' journal and deny list, and the issuer keys.
//
// It moves JSON; the handset and gate roles (hostlib) decide what to send.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/ticketfmt"
)

// Error is an error answer of the server: its HTTP status and message.
type Error struct {
	Status  int
	Message string
}

// Error implements error.
func (e *Error) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
}

// ErrNoContent is returned by Events when nothing became due.
var ErrNoContent = errors.New("apiclient: nothing due")

// Client talks to one api.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the server at baseURL (http://host:port) that
// sends token (operator, gate or holder session; may be empty) as a bearer
// token. hc may be nil (a client with a 2-minute timeout).
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("apiclient: server URL %q: want http://host:port", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// WithToken returns a client of the same server with another token.
func (c *Client) WithToken(token string) *Client {
	d := *c
	d.token = token
	return &d
}

func (c *Client) do(ctx context.Context, method, path string, header http.Header, in, out any) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("apiclient: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.String()+path, body)
	if err != nil {
		return 0, fmt.Errorf("apiclient: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if errors.Is(err, syscall.ECONNREFUSED) {
		return 0, fmt.Errorf("apiclient: %s %s: %w (is the server running at %s?)", method, path, err, c.base)
	}
	if err != nil {
		return 0, fmt.Errorf("apiclient: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("apiclient: %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e api.ErrorAnswer
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(raw))
		}
		return resp.StatusCode, &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if s, ok := out.(*[]byte); ok {
			*s = raw
		} else if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("apiclient: %s %s: malformed answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Order orders tickets (operator). The answer says where each went.
func (c *Client) Order(ctx context.Context, req api.OrderRequest) (api.OrderAnswer, error) {
	var ans api.OrderAnswer
	_, err := c.do(ctx, http.MethodPost, "/v1/orders", nil, req, &ans)
	return ans, err
}

// Tickets lists a carrier's tickets: by serial or MSISDN as an operator,
// by serial with the holder's session.
func (c *Client) Tickets(ctx context.Context, carrier string) (api.TicketsAnswer, error) {
	var ans api.TicketsAnswer
	path := "/v1/carriers/" + url.PathEscape(carrier) + "/tickets"
	if s, err := ticketfmt.ParseSerial(carrier); err == nil {
		path = "/v1/cards/" + s.String() + "/tickets"
	}
	_, err := c.do(ctx, http.MethodGet, path, nil, nil, &ans)
	return ans, err
}

// SetMSISDN registers an MSISDN for a card (operator).
func (c *Client) SetMSISDN(ctx context.Context, serial ticketfmt.Serial, msisdn string) error {
	_, err := c.do(ctx, http.MethodPut, "/v1/cards/"+serial.String()+"/msisdn", nil, map[string]string{"msisdn": msisdn}, nil)
	return err
}

// Challenge asks for a sync challenge for a card.
func (c *Client) Challenge(ctx context.Context, serial ticketfmt.Serial) (api.ChallengeAnswer, error) {
	var ans api.ChallengeAnswer
	_, err := c.do(ctx, http.MethodPost, "/v1/cards/"+serial.String()+"/challenge", nil, nil, &ans)
	return ans, err
}

// Sync sends a card's answers and returns the session and the plan.
func (c *Client) Sync(ctx context.Context, serial ticketfmt.Serial, req api.SyncRequest) (api.SyncAnswer, error) {
	var ans api.SyncAnswer
	_, err := c.do(ctx, http.MethodPost, "/v1/cards/"+serial.String()+"/sync", nil, req, &ans)
	return ans, err
}

// Events waits up to wait for tickets to become due to the card (holder
// session or operator). ErrNoContent when none did.
func (c *Client) Events(ctx context.Context, serial ticketfmt.Serial, wait time.Duration) (int, error) {
	var ans api.EventAnswer
	code, err := c.do(ctx, http.MethodGet, fmt.Sprintf("/v1/cards/%v/events?wait=%d", serial, int(wait.Seconds())), nil, nil, &ans)
	if err != nil {
		return 0, err
	}
	if code == http.StatusNoContent {
		return 0, ErrNoContent
	}
	return ans.Due, nil
}

// Journal uploads a gate's checks (gate token).
func (c *Client) Journal(ctx context.Context, recs []api.JournalRecord) (api.JournalAnswer, error) {
	var ans api.JournalAnswer
	_, err := c.do(ctx, http.MethodPost, "/v1/gate/journal", nil, api.JournalRequest{Checks: recs}, &ans)
	return ans, err
}

// Deny downloads the deny list (gate token).
func (c *Client) Deny(ctx context.Context) ([]ticketfmt.ID, error) {
	var ans api.DenyAnswer
	_, err := c.do(ctx, http.MethodGet, "/v1/gate/deny", nil, nil, &ans)
	return ans.Tickets, err
}

// IssuerKeys downloads the issuer's public keys.
func (c *Client) IssuerKeys(ctx context.Context) (*ticketfmt.KeySet, error) {
	var pem []byte
	if _, err := c.do(ctx, http.MethodGet, "/v1/issuer-keys", nil, nil, &pem); err != nil {
		return nil, err
	}
	return ticketfmt.ParseKeySetPEM(pem)
}

// RotateIssuerKey rotates the server's issuer key (operator): what is signed
// from now on carries the new key ID, and the retired key still verifies
// what it signed. The answer has the new key ID and the key set for gates.
// A server whose issuer key is a file the operator gave answers 409.
func (c *Client) RotateIssuerKey(ctx context.Context) (api.KeyRotation, error) {
	var ans api.KeyRotation
	_, err := c.do(ctx, http.MethodPost, "/v1/issuer-keys/rotate", nil, nil, &ans)
	return ans, err
}
