import gzip, json
from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders
from transformers import PreTrainedTokenizerFast
rows=[json.loads(l) for l in gzip.open('../../../data/hh-rlhf/harmless-base/test.jsonl.gz','rt')]
texts=[r['chosen'] for r in rows]+[r['rejected'] for r in rows]
tok=Tokenizer(models.BPE())
tok.pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder=decoders.ByteLevel()
tr=trainers.BpeTrainer(vocab_size=4096, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(texts, tr)
t=PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
t.save_pretrained('tinytok')
print(len(t), t.tokenize("Human: hello there"))
