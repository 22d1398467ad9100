// Command franz-client is the franz-go (kgo) peer of the client benchmark:
// the same command line and JSON line as kafkawire's client
// (benches/README.md).
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	pool       = 1024
	abortedBit = uint64(1) << 62
)

// paceSleepMin: the latency workload sleeps only when the next record is
// due at least this far ahead (the same in every client: PACE_SLEEP_MIN_US
// in benches/common/bench_common.rs).
const paceSleepMin = 100 * time.Microsecond

type args struct {
	bootstrap, workload, topic, compression, isolation, txnID string
	partitions                                                int
	count, size, txnEvery, abortEvery, rate, idleMs           uint64
	// latSkip: the latency workload records no latency for its first
	// latSkip records (the producer's start-up).
	latSkip uint64
}

func payloadPool(size int) [][]byte {
	x := uint64(0x2545F4914F6CDD1D)
	p := make([][]byte, pool)
	for i := range p {
		b := make([]byte, size)
		for j := range b {
			x = x*6364136223846793005 + 1442695040888963407
			b[j] = 0x41 + byte(x>>59)
		}
		p[i] = b
	}
	return p
}

func recordSum(v []byte) (uint64, uint64) {
	idx := binary.BigEndian.Uint64(v[:8])
	tail := binary.BigEndian.Uint64(v[len(v)-8:])
	return idx, (idx * 0x9E3779B97F4A7C15) ^ tail
}

type report struct {
	records, bytes, checksum, errors uint64
	elapsed                          float64
	latencyUs, commitUs              []uint32
	// firstAckMs: latency workload, from the first send to the first ack
	// (negative: not measured).
	firstAckMs float64
	read       *readCheck
}

type readCheck struct {
	seen                                     []uint64
	records, bytes, dups, aborted, bad, csum uint64
}

func (r *readCheck) add(v []byte) {
	r.records++
	if len(v) < 16 {
		r.bad++
		return
	}
	r.bytes += uint64(len(v))
	idx, sum := recordSum(v)
	if idx&abortedBit != 0 {
		r.aborted++
		return
	}
	w := idx / 64
	if w >= uint64(len(r.seen)) {
		r.bad++
		return
	}
	bit := uint64(1) << (idx % 64)
	if r.seen[w]&bit != 0 {
		r.dups++
		return
	}
	r.seen[w] |= bit
	r.csum += sum
}

func (r *readCheck) unique() uint64 { return r.records - r.dups - r.aborted - r.bad }

func pct(s []uint32, p float64) float64 {
	if len(s) == 0 {
		return -1
	}
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(s) {
		rank = len(s)
	}
	return float64(s[rank-1]) / 1000
}

func (r *report) print(a *args) {
	var b strings.Builder
	fmt.Fprintf(&b, `{"client":"franz-go","workload":"%s","records":%d,"bytes":%d,"elapsed_s":%.6f,"checksum":"%d","errors":%d`,
		a.workload, r.records, r.bytes, r.elapsed, r.checksum, r.errors)
	for _, l := range []struct {
		name string
		v    []uint32
	}{{"lat", r.latencyUs}, {"commit", r.commitUs}} {
		if len(l.v) > 0 {
			sort.Slice(l.v, func(i, j int) bool { return l.v[i] < l.v[j] })
			var sum float64
			over10 := 0
			for _, us := range l.v {
				sum += float64(us)
				if us > 10_000 {
					over10++
				}
			}
			fmt.Fprintf(&b, `,"%s_n":%d,"%s_p50_ms":%.3f,"%s_p99_ms":%.3f,"%s_p999_ms":%.3f,"%s_mean_ms":%.3f,"%s_over10ms_n":%d`,
				l.name, len(l.v), l.name, pct(l.v, 50), l.name, pct(l.v, 99), l.name, pct(l.v, 99.9),
				l.name, sum/float64(len(l.v))/1000, l.name, over10)
		}
	}
	if r.firstAckMs >= 0 && a.workload == "latency" {
		fmt.Fprintf(&b, `,"first_ack_ms":%.3f`, r.firstAckMs)
	}
	if r.read != nil {
		fmt.Fprintf(&b, `,"unique":%d,"dups":%d,"aborted_seen":%d,"bad":%d`, r.read.unique(), r.read.dups, r.read.aborted, r.read.bad)
	}
	b.WriteString("}")
	fmt.Println(b.String())
}

// producerOpts are the benchmark's producer settings (the same for every client).
func producerOpts(a *args, txn bool) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(a.bootstrap, ",")...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		// With idempotence kgo always allows 5 produce requests in flight
		// per broker (it rejects MaxProduceRequestsInflightPerBroker).
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.ProducerBatchMaxBytes(64 * 1024),
		// buffer.memory: kgo bounds buffered bytes with MaxBufferedBytes.
		kgo.MaxBufferedBytes(64 * 1024 * 1024),
		kgo.MaxBufferedRecords(math.MaxInt32),
		kgo.RecordPartitioner(kgo.UniformBytesPartitioner(64*1024, false, false, nil)),
	}
	switch a.compression {
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	}
	if txn {
		opts = append(opts, kgo.TransactionalID(a.txnID))
	}
	return opts
}

func fill(p [][]byte, i uint64) (int, uint64) {
	slot := int(i % pool)
	binary.BigEndian.PutUint64(p[slot][:8], i)
	_, s := recordSum(p[slot])
	return slot, s
}

// produce runs W1/W2 (rate 0) and W5 (rate > 0). kgo does not copy the
// value, so each record gets its own copy of the pooled payload.
func produce(a *args) (*report, error) {
	cl, err := kgo.NewClient(producerOpts(a, false)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := payloadPool(int(a.size))
	rep := &report{}
	lat := a.workload == "latency"
	var mu sync.Mutex
	if lat {
		rep.latencyUs = make([]uint32, 0, a.count)
	}
	var errs atomic.Uint64
	var firstAck atomic.Int64 // nanoseconds from t0; 0: no ack yet
	ctx := context.Background()
	t0 := time.Now()
	for i := uint64(0); i < a.count; i++ {
		if lat {
			due := t0.Add(time.Duration(float64(i) / float64(a.rate) * float64(time.Second)))
			if d := time.Until(due); d > paceSleepMin {
				time.Sleep(d)
			}
		}
		slot, sum := fill(p, i)
		rep.checksum += sum
		v := make([]byte, len(p[slot]))
		copy(v, p[slot])
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Topic: a.topic, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				if errs.Add(1) <= 5 {
					fmt.Fprintln(os.Stderr, "franz-client: delivery failed:", err)
				}
				return
			}
			if lat {
				firstAck.CompareAndSwap(0, time.Since(t0).Nanoseconds())
				if i >= a.latSkip {
					us := uint32(time.Since(sent).Microseconds())
					mu.Lock()
					rep.latencyUs = append(rep.latencyUs, us)
					mu.Unlock()
				}
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return nil, err
	}
	rep.elapsed = time.Since(t0).Seconds()
	rep.firstAckMs = float64(firstAck.Load()) / 1e6
	rep.errors = errs.Load()
	rep.records = a.count
	rep.bytes = a.count * a.size
	return rep, nil
}

func txn(a *args) (*report, error) {
	cl, err := kgo.NewClient(producerOpts(a, true)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	p := payloadPool(int(a.size))
	rep := &report{}
	var errs atomic.Uint64
	ctx := context.Background()
	t0 := time.Now()
	var i, abortedIdx, nTxn uint64
	for i < a.count {
		nTxn++
		abort := a.abortEvery > 0 && nTxn%a.abortEvery == 0
		if err := cl.BeginTransaction(); err != nil {
			return nil, err
		}
		end := i + a.txnEvery
		if end > a.count {
			end = a.count
		}
		for k := i; k < end; k++ {
			var idx uint64
			if abort {
				abortedIdx++
				idx = abortedBit | abortedIdx
			} else {
				idx = i
				i++
			}
			slot, sum := fill(p, idx)
			if !abort {
				rep.checksum += sum
			}
			v := make([]byte, len(p[slot]))
			copy(v, p[slot])
			cl.Produce(ctx, &kgo.Record{Topic: a.topic, Value: v}, func(_ *kgo.Record, err error) {
				if err != nil && errs.Add(1) <= 5 {
					fmt.Fprintln(os.Stderr, "franz-client: delivery failed:", err)
				}
			})
		}
		c0 := time.Now()
		// EndTransaction needs every record acknowledged first.
		if err := cl.Flush(ctx); err != nil {
			return nil, err
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
			return nil, err
		}
		if !abort {
			rep.commitUs = append(rep.commitUs, uint32(time.Since(c0).Microseconds()))
		}
	}
	rep.elapsed = time.Since(t0).Seconds()
	rep.errors = errs.Load()
	rep.records = a.count
	rep.bytes = a.count * a.size
	return rep, nil
}

func consume(a *args) (*report, error) {
	parts := map[int32]kgo.Offset{}
	for i := 0; i < a.partitions; i++ {
		parts[int32(i)] = kgo.NewOffset().AtStart()
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(a.bootstrap, ",")...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{a.topic: parts}),
	}
	if a.isolation == "read_committed" {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rc := &readCheck{seen: make([]uint64, (a.count+63)/64)}
	t0 := time.Now()
	last := time.Now()
	idle := time.Duration(a.idleMs) * time.Millisecond
	for rc.unique() < a.count && time.Since(last) < idle {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded {
				fmt.Fprintln(os.Stderr, "franz-client: fetch error:", t, p, err)
			}
		})
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			rc.add(r.Value)
		})
		if n > 0 {
			last = time.Now()
		}
	}
	return &report{records: rc.records, bytes: rc.bytes, checksum: rc.csum, elapsed: time.Since(t0).Seconds(), read: rc}, nil
}

func main() {
	a := &args{}
	flag.StringVar(&a.bootstrap, "bootstrap", "127.0.0.1:9092", "")
	flag.StringVar(&a.workload, "workload", "", "produce|txn|latency|consume")
	flag.StringVar(&a.topic, "topic", "", "")
	flag.IntVar(&a.partitions, "partitions", 1, "")
	flag.Uint64Var(&a.count, "count", 0, "")
	flag.Uint64Var(&a.size, "size", 100, "")
	flag.StringVar(&a.compression, "compression", "none", "")
	flag.Uint64Var(&a.txnEvery, "txn-every", 1000, "")
	flag.Uint64Var(&a.abortEvery, "abort-every", 0, "")
	flag.Uint64Var(&a.rate, "rate", 0, "")
	flag.Uint64Var(&a.latSkip, "lat-skip", 0, "")
	flag.StringVar(&a.isolation, "isolation", "read_uncommitted", "")
	flag.StringVar(&a.txnID, "transactional-id", "bench-txn", "")
	flag.Uint64Var(&a.idleMs, "idle-ms", 15000, "")
	flag.Parse()
	var rep *report
	var err error
	switch a.workload {
	case "produce", "latency":
		rep, err = produce(a)
	case "txn":
		rep, err = txn(a)
	case "consume":
		rep, err = consume(a)
	default:
		err = fmt.Errorf("--workload %q: expected produce, txn, latency or consume", a.workload)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "franz-client:", err)
		os.Exit(1)
	}
	rep.print(a)
}
