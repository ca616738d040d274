"""Running plans: the scheduler, the run lifecycle (recover / drill / cleanup), journal and events."""
