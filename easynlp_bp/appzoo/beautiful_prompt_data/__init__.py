"""App ``beautiful_prompt_data``: the data-collection pipeline behind the EasyNLP CLI."""
