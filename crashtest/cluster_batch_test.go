package crashtest

import "nhsrelay/directory"

// batchOf writes everything in snap.
func batchOf(snap directory.Snapshot) directory.Batch {
	return directory.Batch{Organisations: snap.Organisations, Endpoints: snap.Endpoints,
		Accounts: snap.Accounts, Challenges: snap.Challenges}
}
