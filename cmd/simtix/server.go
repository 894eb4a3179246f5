package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
	"github.com/simtix/simtix/applet"
	"github.com/simtix/simtix/hostlib"
	"github.com/simtix/simtix/hostlib/handset"
	"github.com/simtix/simtix/internal/corpus"
	"github.com/simtix/simtix/issuer"
	"github.com/simtix/simtix/server"
	"github.com/simtix/simtix/store"
	"github.com/simtix/simtix/store/postgres"
	"github.com/simtix/simtix/store/sqlite"
	"github.com/simtix/simtix/ticketfmt"
)

// openStore opens the database named by --db: a postgres:// URL, or a
// SQLite path (default DATA_DIR/simtix.db).
func openStore(ctx context.Context, db, dataDir string) (store.Store, string, error) {
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		st, err := postgres.Open(ctx, db)
		return st, "PostgreSQL", err
	case db == "":
		db = filepath.Join(dataDir, "simtix.db")
	}
	db = strings.TrimPrefix(db, "sqlite:")
	st, err := sqlite.Open(ctx, db)
	return st, "SQLite " + db, err
}

func newServerCmd() *cobra.Command {
	var listen, db, dataDir, issuerKey string
	var verbose bool
	cmd := &cobra.Command{
		Use:   "server [--listen ADDR] [--db URL] [--data-dir DIR] [--issuer-key SPEC]",
		Short: "Run the ticket center and virtual ticket box",
		Long: `Run the ticket center and virtual ticket box (network.md) until interrupted.

At first start it makes, in the data dir: the issuer key (issuer-key.pem,
unless --issuer-key names a PEM file, made there if missing, or a TPM:
tpm:/dev/tpmrm0, tpm:sim), master.key (for 'simtix card new --master-key'),
operator.token and gate.token, and writes the issuer's public keys to issuer-keys.pem for gates.
--db is a SQLite path (default DATA_DIR/simtix.db) or a postgres:// URL.

'simtix keys rotate' makes a new issuer key current while the server runs
(POST /v1/issuer-keys/rotate, operator token), or in the data dir of a
stopped server; the retired keys stay in issuer-keys.pem.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			// The command line first: a mistake makes no data directory.
			if _, _, err := net.SplitHostPort(listen); err != nil {
				return usagef("--listen %q: want HOST:PORT, such as 127.0.0.1:8080 or :8080", listen)
			}
			if spec := strings.TrimPrefix(issuerKey, "file:"); spec != "" && !strings.HasPrefix(issuerKey, "tpm:") {
				// A key file that does not exist yet is made on first start;
				// its directory must exist.
				if _, err := os.Stat(spec); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return usagef("--issuer-key %q: %v (give a PEM key file, tpm:sim or tpm:/dev/tpmrm0)", issuerKey, err)
				} else if err != nil {
					if _, err := os.Stat(filepath.Dir(spec)); err != nil {
						return usagef("--issuer-key %q: %v (a new key file is made there on first start: its directory must exist)", issuerKey, err)
					}
				}
			}
			keys, err := issuer.Open(ctx, dataDir, issuerKey)
			if err != nil {
				return err
			}
			defer keys.Close()
			st, what, err := openStore(ctx, db, dataDir)
			if err != nil {
				return err
			}
			defer st.Close()
			srv, err := server.New(server.Config{Store: st, Keys: keys, Logger: log})
			if err != nil {
				return err
			}
			defer srv.Close()
			return srv.ListenAndServe(ctx, listen, func(a net.Addr) {
				fmt.Fprintf(cmd.OutOrStdout(), "simtix server on http://%v (database %s, data dir %s); stop with Ctrl-C\n", a, what, dataDir)
			})
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	cmd.Flags().StringVar(&db, "db", "", "SQLite path (default DATA_DIR/simtix.db) or postgres:// URL")
	cmd.Flags().StringVar(&dataDir, "data-dir", "simtix-data", "data directory: keys, tokens, the SQLite database")
	cmd.Flags().StringVar(&issuerKey, "issuer-key", "", "issuer key: a PEM file, tpm:/dev/tpmrm0 or tpm:sim (default DATA_DIR/issuer-key.pem)")
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "log debug messages")
	return cmd
}

// readToken reads a token file (one line).
func readToken(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return t, nil
}

func newOrderCmd() *cobra.Command {
	var serverURL, tokenFile, carrier, file, key string
	var tk api.OrderTicket
	var date, tod string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "order --server URL --token-file FILE --carrier SERIAL_OR_MSISDN [ticket fields or --file tickets.json] [--idempotency-key KEY]",
		Short: "Order tickets for a carrier (operator); prints where each went",
		Long: `Order tickets for a carrier (operator). The tickets are the fields given
(--type --seller --date --time --price [--seat] [--instructions]) or a JSON
array in the form of the ticket corpus (--file; --file corpus orders the
built-in corpus). Without --idempotency-key a random one is used, so a
retried command would order again: give one to make retries safe.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			token, err := readToken(tokenFile)
			if err != nil {
				return err
			}
			c, err := apiclient.New(serverURL, token, nil)
			if err != nil {
				return usageError{err}
			}
			req := api.OrderRequest{Carrier: carrier, IdempotencyKey: key}
			if req.IdempotencyKey == "" {
				req.IdempotencyKey = fmt.Sprintf("cli-%d", time.Now().UnixNano())
			}
			switch {
			case file != "" && tk.Seller != "":
				return usagef("give the ticket fields (--seller --date --time --price ...) or --file, not both")
			case file != "":
				raw := corpus.Raw()
				if file != "corpus" {
					if raw, err = os.ReadFile(file); err != nil {
						return err
					}
				}
				if err := json.Unmarshal(raw, &req.Tickets); err != nil {
					return fmt.Errorf("%s: want a JSON array of tickets: %w", file, err)
				}
			case tk.Seller != "":
				if tk.Date, err = ticketfmt.ParseDate(date); err != nil {
					return usageError{err}
				}
				if tk.Time, err = ticketfmt.ParseTimeOfDay(tod); err != nil {
					return usageError{err}
				}
				req.Tickets = []api.OrderTicket{tk}
			default:
				return usagef("give the ticket fields (--seller --date --time --price ...) or --file")
			}
			ans, err := c.Order(cmd.Context(), req)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, ans)
			}
			out := cmd.OutOrStdout()
			for _, t := range ans.Tickets {
				where := "in the virtual ticket box (overflow)"
				if t.Route == "card" {
					where = "due to the card (direct)"
				}
				fmt.Fprintf(out, "%v  %3d bytes  %s\n", t.ID, t.Size, where)
			}
			fmt.Fprintf(out, "card %v: %d to the card, %d to the box", ans.Carrier, ans.Summary["card"], ans.Summary["box"])
			if ans.Replayed {
				fmt.Fprint(out, " (this order was placed before: nothing issued again)")
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "http://127.0.0.1:8080", "server URL")
	f.StringVar(&tokenFile, "token-file", "", "operator token file (DATA_DIR/operator.token)")
	f.StringVar(&carrier, "carrier", "", "card serial (20 hex digits) or registered MSISDN")
	f.StringVar(&file, "file", "", "JSON array of tickets, or 'corpus'")
	f.StringVar(&key, "idempotency-key", "", "idempotency key (makes retries safe)")
	f.Uint8Var(&tk.Type, "type", 1, "ticket type")
	f.StringVar(&tk.Seller, "seller", "", "seller name")
	f.StringVar(&date, "date", "", "use date, YYYY-MM-DD")
	f.StringVar(&tod, "time", "", "use time, HH:MM")
	f.Uint32Var(&tk.Price, "price", 0, "price in minor units")
	f.StringVar(&tk.Seat, "seat", "", "seat")
	f.StringVar(&tk.Instructions, "instructions", "", "instructions")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	_ = cmd.MarkFlagRequired("token-file")
	_ = cmd.MarkFlagRequired("carrier")
	return cmd
}

func newTicketsCmd() *cobra.Command {
	var serverURL, tokenFile, carrier string
	var card cardFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tickets --server URL [--carrier SERIAL_OR_MSISDN] (--token-file FILE | --reader NAME | --image FILE)",
		Short: "Every ticket of a carrier and where it is",
		Long: `Every ticket of a carrier and where it is (on the card, in the box, being
delivered or returned, checked), as an operator (--token-file, with
--carrier), or as the holder signed in with the card (--reader or --image:
the card answers the box's challenge with BEGIN SYNC, and the box settles
its view of the card; nothing is stored or deleted). The holder sees only
the card's own tickets; --carrier may then be left out.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			given := 0
			for _, s := range []string{tokenFile, card.reader, card.image} {
				if s != "" {
					given++
				}
			}
			if given != 1 {
				return usagef("sign in with one of --token-file (operator), --reader or --image (the holder's card)")
			}
			c, err := apiclient.New(serverURL, "", nil)
			if err != nil {
				return usageError{err}
			}
			if tokenFile != "" {
				if carrier == "" {
					return usagef("--carrier is required with --token-file")
				}
				token, err := readToken(tokenFile)
				if err != nil {
					return err
				}
				c = c.WithToken(token)
			} else {
				oc, err := card.open(ctx, applet.Contact)
				if err != nil {
					return err
				}
				h := &handset.Handset{Card: hostlib.NewApplet(oc, hostlib.ClientOptions{}), Box: c}
				session, serial, err := h.SignIn(ctx)
				if cerr := oc.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return fmt.Errorf("signing in with the card: %w", err)
				}
				c = c.WithToken(session)
				if carrier == "" {
					carrier = serial.String()
				}
			}
			ans, err := c.Tickets(ctx, carrier)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd, ans)
			}
			return printTickets(cmd, ans)
		},
	}
	f := cmd.Flags()
	f.StringVar(&serverURL, "server", "http://127.0.0.1:8080", "server URL")
	f.StringVar(&tokenFile, "token-file", "", "operator token file (DATA_DIR/operator.token)")
	f.StringVar(&carrier, "carrier", "", "card serial or registered MSISDN")
	f.StringVar(&card.reader, "reader", "", "sign in as the holder with the card in this PC/SC reader (contact)")
	f.StringVar(&card.image, "image", "", "sign in as the holder with this card image")
	f.BoolVar(&asJSON, "json", false, "print one JSON document")
	return cmd
}

func printTickets(cmd *cobra.Command, ans api.TicketsAnswer) error {
	out := cmd.OutOrStdout()
	counts := map[string]int{}
	for _, t := range ans.Tickets {
		counts[string(t.State)]++
		state := string(t.State)
		if t.Due {
			state += ", due"
		}
		fmt.Fprintf(out, "%v  %-10s %v %v  %s\n", t.ID, state, t.Date, t.Time, t.Seller)
	}
	_, err := fmt.Fprintf(out, "card %v: %d tickets: %d on the card, %d in the box, %d being delivered, %d returning, %d checked\n",
		ans.Carrier, len(ans.Tickets), counts["card"], counts["box"], counts["delivering"], counts["returning"], counts["checked"])
	for _, f := range ans.Flags {
		if err != nil {
			break
		}
		_, err = fmt.Fprintf(out, "flagged for an operator: %s\n", f)
	}
	return err
}
