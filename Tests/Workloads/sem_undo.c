/* sem_undo [plain|undo|thread]: a process that takes a System V semaphore
 * of its own set. plain: semop without SEM_UNDO, which ferry carries (the
 * set lives in the ipc namespace, not in the process); after a restore
 * the process finds the set and its value unchanged and gives it back.
 * undo: semop with SEM_UNDO, an undo entry the kernel would apply when the
 * process exits and that no interface shows: ferry refuses it by name.
 * thread: the same, from a process with a second thread (which has an undo
 * list anyway, glibc's pthread_create passes CLONE_SYSVSEM): refused too.
 * At the end the set is removed. */
#include "wl.h"
#include <pthread.h>
#include <sys/ipc.h>
#include <sys/sem.h>

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(int argc, char **argv)
{
	wl_init(argc, argv);
	const char *mode = argc > 2 ? argv[2] : "plain";
	int id = semget(IPC_PRIVATE, 2, IPC_CREAT | 0600);
	if (id < 0)
		wl_setup_fail("semget");
	if (semctl(id, 0, SETVAL, 3) != 0)
		wl_setup_fail("semctl(SETVAL)");
	if (strcmp(mode, "thread") == 0) {
		pthread_t t;
		if (pthread_create(&t, NULL, idle, NULL) != 0)
			wl_setup_fail("pthread_create");
	}
	struct sembuf take = { 0, -1, strcmp(mode, "plain") == 0 ? 0 : SEM_UNDO };
	if (semop(id, &take, 1) != 0)
		wl_setup_fail("semop");
	wl_ready();
	while (!wl_stop())
		wl_sleep_us(10000);
	int v = semctl(id, 0, GETVAL);
	WL_CHECK(v == 2, "semaphore set %d reads %d, not 2 (%s)", id, v, v < 0 ? strerror(errno) : "value changed");
	struct sembuf give = { 0, 1, 0 };
	WL_CHECK(semop(id, &give, 1) == 0, "semop to give it back: %s", strerror(errno));
	semctl(id, 0, IPC_RMID);
	wl_finish();
}
