using SharpTune.Models.Blocks;
using TorchSharp;
using static TorchSharp.torch;

namespace SharpTune.Models;

/// <summary>
/// Base of the decoder *ForSequenceClassification classes (transformers' generic decoder head): a
/// <see cref="DecoderModel"/> and a bias-free <c>score</c> layer read at each row's last token that is not
/// pad_token_id (so left and right padding both work). Without a pad_token_id in config.json, as in
/// transformers, only unbatched input (batch size 1) is accepted. Losses as the encoders' heads
/// (<see cref="SequenceClassificationLoss"/>: regression, single-label, multi-label).
/// </summary>
public abstract class DecoderForSequenceClassification : PreTrainedModel
{
    private readonly nn.Module<Tensor, Tensor> _score;

    protected DecoderForSequenceClassification(string name, PretrainedConfig config, DecoderModel model) : base(name, config)
    {
        Model = model;
        register_module(model.BaseModelPrefix, model);
        register_module("score", _score = nn.Linear(model.InputEmbeddingWeight.shape[1], config.NumLabels, hasBias: false));
    }

    /// <summary>The decoder stack (the base model).</summary>
    public DecoderModel Model { get; }

    public override string BaseModelPrefix => Model.BaseModelPrefix;

    public override ModelOutput Forward(ModelInputs inputs)
    {
        using var scope = NewDisposeScope();
        var output = Model.Forward(inputs);
        var hidden = output.LastHiddenState;
        var last = LastTokenIndices(inputs.InputIds).to(hidden.device);
        var pooled = hidden.gather(1, last.view(-1, 1, 1).expand(-1, 1, hidden.shape[2])).squeeze(1);
        var logits = _score.forward(pooled);
        return output.WithHead(logits, SequenceClassificationLoss.Compute(logits, inputs, Config)).MoveToOuterDisposeScope();
    }

    /// <summary>Index of each row's last token that is not pad_token_id (0 for an all-padding row), as transformers picks it.</summary>
    private Tensor LastTokenIndices(Tensor inputIds)
    {
        var (batch, length) = (inputIds.shape[0], inputIds.shape[1]);
        if (Config.Get<long?>("pad_token_id", null) is not { } pad)
        {
            if (batch != 1)
                throw new ArgumentException($"{Config.SourcePath ?? PretrainedConfig.FileName}: cannot classify a batch of {batch} without pad_token_id in the config (set it to find each row's last token)");
            return full(1, length - 1, ScalarType.Int64, inputIds.device);
        }
        using var scope = NewDisposeScope();
        var positions = arange(length, ScalarType.Int64, inputIds.device);
        return (positions * inputIds.ne(pad).to(ScalarType.Int64)).argmax(-1).MoveToOuterDisposeScope();
    }

    protected override bool IsIgnorableKey(string key) => base.IsIgnorableKey(key) || Model.IsIgnorable(key);
}
