"""What a run needs from the machine and the job, below everything else: joining a multi-host job, values
shared across hosts, preemption notices, the host heap. Importing this package imports nothing."""
