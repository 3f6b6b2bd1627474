/* threads_tls: 4 threads (plus main), each with a __thread value set to a
 * distinct number and a __thread counter it increments and publishes.
 * Threads check their TLS value, its address and pthread_self() all the
 * time. At stop the counters must still increase (every thread runs after
 * restore), then a shared flag ends the threads and each returns its verdict. */
#include "wl.h"
#include <pthread.h>

#define NT 4
static __thread long tls_val;
static __thread unsigned long tls_count;
static long *tls_addr[NT + 1];
static volatile unsigned long published[NT + 1];
static volatile int done;
static pthread_t self_id[NT + 1];

static long expect(int i) { return 0x7e570000L + 1111L * i; }

/* One round of thread i's own checks; returns 0 when broken. */
static int check_self(int i)
{
	if (tls_val != expect(i) || &tls_val != tls_addr[i] || !pthread_equal(pthread_self(), self_id[i])) {
		wl_fail("thread %d: TLS value %ld (want %ld) at %p (was %p)", i, tls_val, expect(i),
			(void *)&tls_val, (void *)tls_addr[i]);
		return 0;
	}
	if (published[i] != tls_count) {
		wl_fail("thread %d: counter %lu, published %lu", i, tls_count, published[i]);
		return 0;
	}
	published[i] = ++tls_count;
	return 1;
}

static void setup_self(int i)
{
	tls_val = expect(i);
	tls_addr[i] = &tls_val;
	self_id[i] = pthread_self();
}

static void *thread_main(void *arg)
{
	int i = (int)(long)arg;
	setup_self(i);
	while (!done && check_self(i))
		wl_sleep_us(500);
	return (void *)(long)(tls_val == expect(i));
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	setup_self(NT);
	pthread_t th[NT];
	for (long i = 0; i < NT; i++)
		if (pthread_create(&th[i], NULL, thread_main, (void *)i) != 0)
			wl_setup_fail("pthread_create");
	for (int i = 0; i < NT; i++)
		while (!published[i])
			wl_sleep_us(1000);
	for (int i = 0; i <= NT; i++)
		for (int j = 0; j < i; j++)
			WL_CHECK(tls_addr[i] != tls_addr[j], "threads %d and %d share TLS", i, j);
	wl_ready();
	while (!wl_stop()) {
		check_self(NT);
		wl_sleep_us(2000);
	}
	/* After restore: every thread must make progress. */
	unsigned long before[NT];
	for (int i = 0; i < NT; i++)
		before[i] = published[i];
	wl_sleep_us(200000);
	for (int i = 0; i < NT; i++)
		WL_CHECK(published[i] > before[i], "thread %d stopped running (counter %lu)", i, before[i]);
	check_self(NT);
	done = 1;
	for (int i = 0; i < NT; i++) {
		void *ok = NULL;
		pthread_join(th[i], &ok);
		WL_CHECK(ok, "thread %d ended with a wrong TLS value", i);
	}
	wl_finish();
}
