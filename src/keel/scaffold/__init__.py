"""`keel new`: generators for a new project and for a new feature of an existing one."""
