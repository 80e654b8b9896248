"""Chat template and system prompts shared by every backbone.

`QWEN2_5_VL_CHAT_TEMPLATE` is the chat template Qwen2.5-VL-Instruct checkpoints ship (messages with text,
image and video parts; a default system turn; `add_vision_id` numbering), restated here because tiny presets
are built offline. `THINK_SYSTEM_PROMPT` is VST's thinking prompt (VST README): chain of thought in `<think>`
tags, then the answer.
"""

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

THINK_SYSTEM_PROMPT = (
    "You are a helpful assistant. You should first think about the reasoning process in the mind and then provide "
    "the user with the answer. The reasoning process is enclosed within <think> </think> tags, i.e. <think> "
    "reasoning process here </think> answer here."
)

QWEN2_5_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
