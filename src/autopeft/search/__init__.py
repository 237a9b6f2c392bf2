"""Searches as library code: the study record (`record`), its storage (`storage`), the search loop
(`loop`) and how a process runs it (`request`, `run`), reading results back (`results`, `report`),
and the follow-ups of a search (`followup`: retrain, transfer, export).

Direction of imports: record -> storage -> results -> loop -> run; report and followup read
results. Nothing here imports argparse or the CLI; heavy libraries load inside functions.
"""
