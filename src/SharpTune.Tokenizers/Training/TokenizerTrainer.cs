using System.Collections.Concurrent;
using System.Text;
using SharpTune.Tokenizers.Models;
using SharpTune.Tokenizers.Pipeline;

namespace SharpTune.Tokenizers.Training;

/// <summary>The kinds of tokenizer <see cref="TokenizerTrainer"/> builds, each with Hugging Face's usual pipeline.</summary>
public enum TokenizerType
{
    /// <summary>BPE on words split by <c>\w+|[^\w\s]+</c>, NFD + accent stripping, [UNK] (Hugging Face BPE + Whitespace).</summary>
    Bpe,

    /// <summary>GPT-2 byte-level BPE: no unknown tokens, 256 byte symbols, &lt;|endoftext|&gt;.</summary>
    ByteLevelBpe,

    /// <summary>BERT WordPiece: lowercase, accent stripping, [CLS] A [SEP] template.</summary>
    WordPiece,

    /// <summary>SentencePiece-style unigram with NFKC and ▁ for spaces.</summary>
    Unigram,
}

/// <summary>Training settings; null values take the defaults of the tokenizer type (those of Hugging Face's trainers).</summary>
public sealed record TrainerOptions
{
    public int VocabSize { get; init; } = 30000;
    public long? MinFrequency { get; init; }
    public IReadOnlyList<string>? SpecialTokens { get; init; }
    public int? LimitAlphabet { get; init; }
    public IReadOnlyList<char>? InitialAlphabet { get; init; }
}

/// <summary>Trains a tokenizer from texts or files and returns it ready to use (and to <see cref="Tokenizer.Save"/>).</summary>
public static class TokenizerTrainer
{
    public static Tokenizer TrainFromFiles(TokenizerType type, IEnumerable<string> files, TrainerOptions options, IProgress<double>? progress = null)
    {
        var paths = files.ToList();
        foreach (var path in paths)
            if (!File.Exists(path))
                throw new FileNotFoundException($"Training file not found: {path}", path);
        return Train(type, paths.SelectMany(File.ReadLines), options, progress);
    }

    public static Tokenizer Train(TokenizerType type, IEnumerable<string> texts, TrainerOptions options, IProgress<double>? progress = null)
    {
        if (options.VocabSize <= 0)
            throw new ArgumentException($"Vocabulary size must be positive (got {options.VocabSize})");
        var (normalizer, preTokenizer) = PipelineFor(type);
        var wordCounts = CountWords(texts, normalizer, preTokenizer);
        var specials = options.SpecialTokens ?? type switch
        {
            TokenizerType.ByteLevelBpe => ["<|endoftext|>"],
            TokenizerType.WordPiece => ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
            TokenizerType.Unigram => ["<pad>", "</s>", "<unk>"],
            _ => ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"],
        };
        var added = specials.Select((t, i) => new AddedToken(t, i)).ToList();
        ITokenizerModel model;
        IPostProcessor? postProcessor = null;
        IDecoder? decoder = null;
        switch (type)
        {
            case TokenizerType.Unigram:
            {
                var unk = specials.Contains("<unk>") ? "<unk>" : null;
                var pieces = UnigramTrainer.Train(wordCounts, new UnigramTrainerOptions
                {
                    VocabSize = options.VocabSize, SpecialTokens = specials,
                }, progress);
                model = new UnigramModel(pieces, unk is null ? null : specials.ToList().IndexOf(unk), byteFallback: false);
                decoder = new MetaspaceDecoder('\u2581', PrependScheme.Always);
                break;
            }
            default:
            {
                var result = BpeTrainer.Train(wordCounts, new BpeTrainerOptions
                {
                    VocabSize = options.VocabSize,
                    MinFrequency = options.MinFrequency ?? (type == TokenizerType.Bpe ? 0 : 2),
                    SpecialTokens = specials,
                    LimitAlphabet = options.LimitAlphabet ?? (type == TokenizerType.WordPiece ? 1000 : null),
                    InitialAlphabet = options.InitialAlphabet ?? (type == TokenizerType.ByteLevelBpe ? ByteLevelAlphabet.ByteToChar : []),
                    ContinuingSubwordPrefix = type == TokenizerType.WordPiece ? "##" : null,
                }, progress);
                var vocab = VocabHelpers.FromList(result.Vocab);
                if (type == TokenizerType.WordPiece)
                {
                    var unk = specials.Contains("[UNK]") ? "[UNK]" : specials[0];
                    model = new WordPieceModel(vocab, unk);
                    var cls = specials.Contains("[CLS]") ? "[CLS]" : specials[0];
                    var sep = specials.Contains("[SEP]") ? "[SEP]" : specials[0];
                    postProcessor = TemplateProcessor.Bert(cls, vocab[cls], sep, vocab[sep]);
                    decoder = new WordPieceDecoder("##", cleanup: true);
                }
                else if (type == TokenizerType.ByteLevelBpe)
                {
                    model = new BpeModel(vocab, result.Merges, new BpeOptions());
                    postProcessor = new ByteLevelProcessor(trimOffsets: false, addPrefixSpace: true);
                    decoder = new ByteLevelDecoder();
                }
                else
                    model = new BpeModel(vocab, result.Merges, new BpeOptions { UnkToken = specials.Contains("[UNK]") ? "[UNK]" : null });
                break;
            }
        }
        return new Tokenizer(model, normalizer, preTokenizer, postProcessor, decoder, added);
    }

    /// <summary>The normalizer and pre-tokenizer of each type (as the fixtures' Hugging Face tokenizers use).</summary>
    private static (INormalizer? Normalizer, IPreTokenizer? PreTokenizer) PipelineFor(TokenizerType type) => type switch
    {
        TokenizerType.Bpe => (new SequenceNormalizer([new UnicodeNormalizer(NormalizationForm.FormD), new StripAccentsNormalizer()]),
            new WhitespacePreTokenizer()),
        TokenizerType.ByteLevelBpe => (null, new ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)),
        TokenizerType.WordPiece => (new BertNormalizer(true, true, null, lowercase: true), new BertPreTokenizer()),
        TokenizerType.Unigram => (new UnicodeNormalizer(NormalizationForm.FormKC), new MetaspacePreTokenizer('\u2581', PrependScheme.Always, split: true)),
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>Normalizes and pre-tokenizes every text (in parallel) and counts the words.</summary>
    internal static Dictionary<string, long> CountWords(IEnumerable<string> texts, INormalizer? normalizer, IPreTokenizer? preTokenizer)
    {
        var total = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        Parallel.ForEach(texts.Chunk(1024), () => new Dictionary<string, long>(StringComparer.Ordinal), (chunk, _, local) =>
        {
            var words = new List<NormalizedString>();
            foreach (var text in chunk)
            {
                var piece = NormalizedString.FromOriginal(text, 0, text.Length);
                normalizer?.Normalize(piece);
                words.Clear();
                if (preTokenizer is null)
                    words.Add(piece);
                else
                    preTokenizer.Split(piece, words);
                foreach (var word in words)
                    if (word.Length > 0)
                        local[word.Text] = local.GetValueOrDefault(word.Text) + 1;
            }
            return local;
        }, local =>
        {
            foreach (var (word, count) in local)
                total.AddOrUpdate(word, count, (_, c) => c + count);
        });
        return new Dictionary<string, long>(total, StringComparer.Ordinal);
    }
}
