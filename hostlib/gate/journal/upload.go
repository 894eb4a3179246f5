package journal

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/simtix/simtix/api"
	"github.com/simtix/simtix/apiclient"
)

// MaxUpload is the most records Upload sends in one request: the server's
// limit (server.MaxJournal).
const MaxUpload = 1000

// API returns r as the server's API carries it: gate ID, nonce and receipt
// in hex, the time as YYYY-MM-DDThh:mm:ss.
func (r Record) API() api.JournalRecord {
	return api.JournalRecord{
		TicketID: r.TicketID,
		Serial:   r.Serial,
		GateID:   hex.EncodeToString(r.Gate[:]),
		Time:     r.Time.String(),
		Nonce:    hex.EncodeToString(r.Nonce[:]),
		Receipt:  hex.EncodeToString(r.Receipt),
	}
}

// Upload sends j's pending records to the server through c (which carries
// the gate token), at most MaxUpload per request, and marks each request's
// records uploaded once the server has answered it. It returns the
// server's answers added up: Rejected lists the records the server
// refused (an unknown ticket, a receipt that does not verify), which are
// marked uploaded too, since sending them again would change nothing.
//
// On an error (the server unreachable, or an error answer) the records of
// the failed request stay pending, to be sent again by the next Upload:
// the server takes the same record twice harmlessly. Records appended
// during Upload are sent too.
func Upload(ctx context.Context, j *Journal, c *apiclient.Client) (api.JournalAnswer, error) {
	var total api.JournalAnswer
	for {
		start, batch := j.pending(MaxUpload)
		if len(batch) == 0 {
			return total, nil
		}
		recs := make([]api.JournalRecord, len(batch))
		for i, r := range batch {
			recs[i] = r.API()
		}
		ans, err := c.Journal(ctx, recs)
		if err != nil {
			return total, fmt.Errorf("journal %s: upload of records %d to %d: %w", j.path, start+1, start+len(batch), err)
		}
		total.Accepted += ans.Accepted
		total.Duplicates += ans.Duplicates
		total.Rejected = append(total.Rejected, ans.Rejected...)
		total.CheckedTwice = append(total.CheckedTwice, ans.CheckedTwice...)
		if err := j.markUploadedThrough(start + len(batch)); err != nil {
			return total, err
		}
	}
}
