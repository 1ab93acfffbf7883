// Package storetest is the one contract suite every directory.Store runs
// (boltstore, redisstore, and any fake another package's tests use):
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) directory.Store { return openEmpty(t) })
//	}
package storetest
